"""SIGTERM, as Kubernetes stops a pod: handled like Ctrl-C, through the installed `faco` executable.

Training stops at the end of its current step and keeps its last whole checkpoint (the next run
resumes from it and reports what an unbroken run reports); any other stage unwinds at once. Both
exit 143 with one line, leaving no half-written artifact, temporary folder or lock.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from faco.config import Study
from faco.errors import EXIT_TERMINATED
from faco.stages import corrupt, train
from faco.training.checkpoints import is_whole

FACO = str(Path(sys.executable).with_name("faco"))
SMOKE = str(Path(__file__).resolve().parents[1] / "configs" / "smoke.yaml")
LONG = ["--set", "train.epochs=12", "--set", "train.checkpoint_steps=2", "--set", "train.save_every_epoch=false"]


def _env(tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, "FACO_CACHE_DIR": str(tmp_path / ".cache")}
    env.pop("FACO_DEBUG", None)
    return env


def _leftovers(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if ".tmp-" in p.name or ".old-" in p.name or p.name.endswith(".lock"))


def _terminate_when(proc: subprocess.Popen[str], ready: Any, what: str) -> str:
    """Send SIGTERM once `ready()` holds; the process's stderr."""
    try:
        deadline = time.monotonic() + 600
        while not ready() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, f"finished before {what}: " + proc.communicate()[1][-2000:]
        proc.send_signal(signal.SIGTERM)
        return proc.communicate(timeout=600)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def splits(tmp_path_factory: pytest.TempPathFactory, smoke_pairs: Path, smoke: Study) -> Path:
    return corrupt.run(smoke, smoke_pairs, tmp_path_factory.mktemp("sigterm") / "splits")


def _stats(model: Path) -> dict[str, Any]:
    return dict(json.loads((model / "train_stats.json").read_text()))


def test_sigterm_in_training_keeps_the_last_whole_checkpoint_and_the_rerun_resumes(
        tmp_path: Path, splits: Path) -> None:
    args = [FACO, "train", SMOKE, "--splits", str(splits), "--ratio", "0.5", "--out", "m", *LONG]
    work = tmp_path / ".m.work" / "trainer"
    proc = subprocess.Popen(args, cwd=tmp_path, env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    err = _terminate_when(proc, lambda: is_whole(work / "checkpoint-2"), "its first checkpoint")
    assert proc.returncode == EXIT_TERMINATED, err[-2000:]
    assert err.strip().splitlines()[-1] == "error: terminated (SIGTERM)" and "Traceback" not in err
    assert "stopping at the end of this training step" in err
    assert not (tmp_path / "m").exists() and _leftovers(tmp_path) == []
    kept = sorted(work.glob("checkpoint-*"))
    assert kept and all(is_whole(c) for c in kept), kept

    again = subprocess.run(args, cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"train: resuming from {kept[-1].relative_to(tmp_path)}" in again.stderr
    resumed = _stats(tmp_path / "m")
    assert resumed["resumed_from"] == kept[-1].name

    clean = subprocess.run([*args[:-len(LONG) - 2], "--out", "clean", *LONG], cwd=tmp_path, env=_env(tmp_path),
                           capture_output=True, text=True, timeout=600)
    assert clean.returncode == 0, clean.stderr[-2000:]
    whole = _stats(tmp_path / "clean")
    # the resumed run reports the whole run, not the steps after its resume
    assert resumed["train_loss"] == pytest.approx(whole["train_loss"], abs=1e-6)
    assert (resumed["real_tokens"], resumed["token_slots"]) == (whole["real_tokens"], whole["token_slots"])


def test_sigterm_in_another_stage_unwinds_at_once_leaving_nothing(tmp_path: Path, splits: Path, smoke: Study) -> None:
    data = smoke.model_dump(mode="json")
    data["train"].update(epochs=1, save_every_epoch=False)
    model = train.run(Study.model_validate(data), splits, 0.0, tmp_path / "model")
    proc = subprocess.Popen([FACO, "evaluate", SMOKE, "--model", str(model), "--out", "e"], cwd=tmp_path,
                            env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    err = _terminate_when(proc, lambda: any(tmp_path.glob(".e.tmp-*")), "it started writing")
    assert proc.returncode == EXIT_TERMINATED, err[-2000:]
    assert err.strip().splitlines()[-1] == "error: terminated (SIGTERM)" and "Traceback" not in err
    assert not (tmp_path / "e").exists() and _leftovers(tmp_path) == []
