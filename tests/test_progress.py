"""Log lines stay whole when stderr is not a terminal (CI logs, files, grep)."""

from __future__ import annotations

import pytest

from faco.progress import log, track


def test_long_lines_are_not_wrapped(capfd: pytest.CaptureFixture[str]) -> None:
    message = "ingest commonsense_qa/train: " + " ".join(["rejected"] * 40)
    log(message)
    label = "evaluate" + " cr_050" * 20
    assert list(track([1, 2], label)) == [1, 2]
    assert capfd.readouterr().err.splitlines() == [f"faco: {message}", f"faco: {label} …"]
