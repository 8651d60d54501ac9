"""Resume only what matches: a work folder's checkpoints are resumed by the same training run
(config, split, base model, start checkpoint, world size) and by no other."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from crash import Crash

from faco.config import Study
from faco.stages import corrupt, train
from faco.training.checkpoints import FINGERPRINT, prepare_work


@pytest.fixture(scope="module")
def splits(tmp_path_factory: pytest.TempPathFactory, smoke_pairs: Path, smoke: Study) -> Path:
    return corrupt.run(smoke, smoke_pairs, tmp_path_factory.mktemp("resume") / "splits")


def _study(smoke: Study, **train: Any) -> Study:
    data = smoke.model_dump(mode="json")
    data["train"].update({"epochs": 1, "checkpoint_steps": 2, "global_batch_size": 8, "per_device_batch_size": 8,
                          "save_every_epoch": False, **train})
    return Study.model_validate(data)


def _interrupted(study: Study, splits: Path, ratio: float, out: Path, work: Path) -> None:
    with pytest.raises(KeyboardInterrupt):
        train.run(study, splits, ratio, out, work_dir=work, callbacks=[Crash(3)])
    assert (work / "trainer" / "checkpoint-2").is_dir() and (work / FINGERPRINT).is_file()


def _stats(out: Path) -> dict[str, Any]:
    return dict(json.loads((out / "train_stats.json").read_text()))


def _losses(out: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (out / "loss.jsonl").read_text().splitlines()]


def test_same_config_resumes(tmp_path: Path, splits: Path, smoke: Study, capfd: pytest.CaptureFixture[str]) -> None:
    study = _study(smoke)
    _interrupted(study, splits, 0.5, tmp_path / "m", tmp_path / "work")
    train.run(study, splits, 0.5, tmp_path / "m", work_dir=tmp_path / "work")
    assert _stats(tmp_path / "m")["resumed_from"] == "checkpoint-2"
    assert "not resuming" not in capfd.readouterr().err


@pytest.mark.parametrize("torn", ["checkpoint-4", "checkpoint-2"])
def test_a_checkpoint_torn_while_saving_is_skipped_and_removed(
    tmp_path: Path, splits: Path, smoke: Study, capfd: pytest.CaptureFixture[str], torn: str
) -> None:
    """A kill while the Trainer saves leaves a torn `trainer_state.json` (the file it writes last)
    in the newest checkpoint, the one before it still whole (one is kept, and only once the next is
    written): the next run resumes from that one, or starts over if none is whole, and ends where
    an unbroken run ends."""
    study = _study(smoke)
    work = tmp_path / "work"
    _interrupted(study, splits, 0.5, tmp_path / "m", work)
    if torn != "checkpoint-2":
        shutil.copytree(work / "trainer" / "checkpoint-2", work / "trainer" / torn)
    state = work / "trainer" / torn / "trainer_state.json"
    state.write_text(state.read_text()[:100])
    capfd.readouterr()
    train.run(study, splits, 0.5, tmp_path / "m", work_dir=work)
    err = capfd.readouterr().err
    assert f"train: {work / 'trainer' / torn} is incomplete (the run was killed while saving it): removed" in err
    assert _stats(tmp_path / "m")["resumed_from"] == ("checkpoint-2" if torn == "checkpoint-4" else None)
    assert "not resuming" not in err
    clean = train.run(study, splits, 0.5, tmp_path / "clean")
    assert _losses(tmp_path / "m") == pytest.approx(_losses(clean), abs=1e-6)


def test_changed_learning_rate_starts_fresh_and_says_why(
    tmp_path: Path, splits: Path, smoke: Study, capfd: pytest.CaptureFixture[str]
) -> None:
    _interrupted(_study(smoke), splits, 0.5, tmp_path / "m", tmp_path / "work")
    capfd.readouterr()
    changed = _study(smoke, learning_rate=2e-3)
    train.run(changed, splits, 0.5, tmp_path / "m", work_dir=tmp_path / "work")
    lines = [ln for ln in capfd.readouterr().err.splitlines() if "not resuming" in ln]
    assert len(lines) == 1, lines
    assert "train.learning_rate (0.001 -> 0.002)" in lines[0] and lines[0].endswith("starting fresh")
    assert _stats(tmp_path / "m")["resumed_from"] is None
    # the result is that of an uninterrupted run with the new learning rate (no old optimizer state)
    clean = train.run(changed, splits, 0.5, tmp_path / "clean")
    assert _losses(tmp_path / "m") == pytest.approx(_losses(clean), abs=1e-6)


def test_changed_split_or_ratio_starts_fresh(
    tmp_path: Path, splits: Path, smoke: Study, smoke_pairs: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    study = _study(smoke)
    _interrupted(study, splits, 0.5, tmp_path / "m", tmp_path / "work")
    train.run(study, splits, 0.25, tmp_path / "m", work_dir=tmp_path / "work")
    assert _stats(tmp_path / "m")["resumed_from"] is None
    assert "ratio (0.5 -> 0.25)" in capfd.readouterr().err

    reseeded = smoke.model_copy(update={"corrupt": smoke.corrupt.model_copy(update={"seed": 5})})
    other = corrupt.run(reseeded, smoke_pairs, tmp_path / "splits-seed5")
    _interrupted(study, splits, 0.5, tmp_path / "m2", tmp_path / "work2")
    train.run(study, other, 0.5, tmp_path / "m2", work_dir=tmp_path / "work2")
    assert _stats(tmp_path / "m2")["resumed_from"] is None
    assert "splits_manifest_sha256 changed" in capfd.readouterr().err


def test_fingerprint_covers_world_size_and_start_checkpoint(tmp_path: Path) -> None:
    work = tmp_path / "work"
    fp = {"world_size": 1, "start_checkpoint": None, "train": {"seed": 0}}
    assert prepare_work(work, fp, resume=True, main=True) is False  # nothing to resume yet
    (work / "trainer" / "checkpoint-4").mkdir(parents=True)
    assert prepare_work(work, fp, resume=True, main=True) is True
    assert (work / "trainer" / "checkpoint-4").is_dir()
    for change in ({"world_size": 8}, {"start_checkpoint": "ab" * 32}, {"train": {"seed": 1}}):
        (work / "trainer" / "checkpoint-4").mkdir(parents=True, exist_ok=True)
        assert prepare_work(work, {**fp, **change}, resume=True, main=True) is False
        assert not (work / "trainer").exists()
        prepare_work(work, fp, resume=False, main=True)  # back to the original fingerprint
    assert prepare_work(work, fp, resume=False, main=True) is False, "resume=False never resumes"


def test_a_start_model_downloaded_again_resumes(
    tmp_path: Path, splits: Path, smoke: Study, capfd: pytest.CaptureFixture[str]
) -> None:
    """A retried recovery pod gets its start model downloaded anew: another path, new mtimes, the same
    content. The fingerprint is the content, so the retry resumes (issue 19, defect 7)."""
    study = _study(smoke)
    start = train.run(study, splits, 1.0, tmp_path / "pod1" / "start")
    with pytest.raises(KeyboardInterrupt):
        train.run(study, splits, 0.0, tmp_path / "m", start=start, work_dir=tmp_path / "work", callbacks=[Crash(3)])
    again = shutil.copytree(start, tmp_path / "pod2" / "start", copy_function=shutil.copy)  # fresh mtimes
    capfd.readouterr()
    train.run(study, splits, 0.0, tmp_path / "m", start=again, work_dir=tmp_path / "work")
    assert _stats(tmp_path / "m")["resumed_from"] == "checkpoint-2"
    assert "not resuming" not in capfd.readouterr().err
