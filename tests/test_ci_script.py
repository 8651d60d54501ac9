"""`.ci/run`: the README's `make test`, then the container step, which never fails CI for want of tooling."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_make_test_then_the_container_step() -> None:
    commands = [line for line in (ROOT / ".ci" / "run").read_text().splitlines()
                if line and not line.startswith(("#", "set ", "cd ", "start=", "echo ", "export "))]
    assert commands == ["make test", ".ci/containers"]


def _step(mode: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(ROOT / ".ci" / "containers")], capture_output=True, text=True,
                          env={**os.environ, "FACO_CI_CONTAINERS": mode, **env})


def test_container_step_skipped_on_request_says_so() -> None:
    done = _step("skip")
    assert done.returncode == 0 and done.stdout == "container step skipped: FACO_CI_CONTAINERS=skip\n"


def test_container_step_refuses_an_unknown_mode() -> None:
    done = _step("maybe")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == "error: FACO_CI_CONTAINERS must be auto, require or skip (got maybe)\n"


def test_container_step_skipped_when_the_ci_budget_is_spent_says_so() -> None:
    """CI stops at 90 min: in auto mode a step that cannot fit is skipped on one line, before any setup."""
    done = _step("auto", FACO_CI_T0="0", FACO_CI_BUDGET_S="5100")  # started in 1970: nothing left
    assert done.returncode == 0 and done.stdout.startswith("container step skipped: ")
    assert "s left of the CI budget (FACO_CI_BUDGET_S)" in done.stdout and done.stdout.count("\n") == 1
