"""faco's messages go through the `faco` logger: the CLI shows them as `faco: ...` lines (fewer with
--quiet, more with -v), and an application embedding faco routes or silences them with logging."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from faco import progress
from faco.stages import ingest

FACO = [sys.executable, "-m", "faco"]


def _ingest(root: Path, out: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*FACO, *flags, "ingest", str(root / "configs" / "smoke.yaml"), "--out", str(out)],
                          capture_output=True, text=True, cwd=root)


def test_quiet_and_verbose(root: Path, tmp_path: Path) -> None:
    said = {}
    for flags in ((), ("--quiet",), ("-v",)):
        proc = _ingest(root, tmp_path / (flags[0].strip("-") if flags else "plain"), *flags)
        assert proc.returncode == 0, proc.stderr[-2000:]
        said[flags] = [line for line in proc.stderr.splitlines() if line.startswith("faco: ")]
    assert any(line.startswith("faco: ingest ") for line in said[()])
    assert said[("--quiet",)] == []  # results and errors only: the artifact, no progress lines
    assert (tmp_path / "quiet" / "sources.jsonl").is_file()
    debug = [line for line in said[("-v",)] if line not in said[()]]
    assert debug and debug[0].startswith(f"faco: config {root / 'configs' / 'smoke.yaml'}: study 'smoke'")


@pytest.fixture
def routed() -> Iterator[None]:
    progress.uninstall()
    yield
    progress.install()


def test_an_application_routes_faco_messages_with_logging(routed: None, caplog: pytest.LogCaptureFixture,
                                                         capfd: pytest.CaptureFixture[str], tmp_path: Path,
                                                         smoke: object) -> None:
    with caplog.at_level(logging.INFO, logger="faco"):
        ingest.run(smoke, tmp_path / "ingest")  # type: ignore[arg-type]
    assert any(r.name == "faco" and r.getMessage().startswith("ingest ") for r in caplog.records)
    assert all(r.pathname.endswith("ingest.py") for r in caplog.records if r.getMessage().startswith("ingest "))
    assert "faco: " not in capfd.readouterr().err  # faco's own lines are off: the application's logging decides


def test_an_application_silences_faco(capfd: pytest.CaptureFixture[str]) -> None:
    logging.getLogger("faco").setLevel(logging.WARNING)
    try:
        progress.log("not shown")
        assert list(progress.track([1, 2], "not shown either")) == [1, 2]
    finally:
        progress.install()
    progress.log("shown again")
    assert capfd.readouterr().err.splitlines() == ["faco: shown again"]
