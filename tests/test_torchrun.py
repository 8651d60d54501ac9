"""Every accelerator of a pod: `faco train` and the KFP train component launch torchrun when more
than one process is asked for (FACO_NPROC / --nproc on CPU, the visible GPUs on a cluster)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from faco.config import Study
from faco.stages import corrupt, train

pytestmark = pytest.mark.slow
FACO = Path(sys.executable).parent / "faco"


@pytest.fixture(scope="module")
def splits(tmp_path_factory: pytest.TempPathFactory, smoke_pairs: Path, smoke: Study) -> Path:
    return corrupt.run(smoke, smoke_pairs, tmp_path_factory.mktemp("torchrun") / "splits")


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory, splits: Path, smoke: Study) -> Path:
    """The same training in one process."""
    return train.run(smoke, splits, 0.5, tmp_path_factory.mktemp("single") / "m")


def _losses(path: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in path.read_text().splitlines()]


def _same_training(out: Path, single: Path) -> None:
    stats = json.loads((out / "train_stats.json").read_text())
    assert stats["world_size"] == 2
    assert stats["per_device_batch_size"] * 2 * stats["gradient_accumulation_steps"] == 8
    # the same samples per optimizer step as one process (the last, partial batch of an epoch is
    # split unevenly over the processes, hence the tolerance)
    assert _losses(out / "loss.jsonl") == pytest.approx(_losses(single / "loss.jsonl"), rel=5e-3)


def _faco_train(root: Path, splits: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [str(FACO), "train", str(root / "configs" / "smoke.yaml"), "--splits", str(splits), "--out", str(out),
           *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=root,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_faco_train_on_two_processes_matches_one(tmp_path: Path, root: Path, splits: Path, single: Path) -> None:
    done = _faco_train(root, splits, tmp_path / "m", "--ratio", "0.5", "--nproc", "2")
    assert done.returncode == 0, done.stderr[-3000:]
    _same_training(tmp_path / "m", single)


def test_a_failed_rank_fails_faco_train_with_one_line(tmp_path: Path, root: Path, splits: Path) -> None:
    done = _faco_train(root, splits, tmp_path / "m", "--ratio", "0.3", "--nproc", "2")
    assert done.returncode != 0
    assert "no split for ratio 0.3" in done.stderr  # the rank's own error, streamed
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: training failed: torchrun (2 processes) exited with code ")
    assert not (tmp_path / "m").exists()


def test_kfp_train_component_runs_torchrun_locally(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   root: Path, splits: Path, single: Path) -> None:
    """The train component under the real KFP local runner, with FACO_NPROC=2 standing in for 2 GPUs."""
    from kfp import dsl, local
    from kfp.dsl import Dataset

    from faco.components.train import train as train_component
    from faco.kfp_glue import plan

    @dsl.pipeline(name="train-only")
    def train_only(config_yaml: str, splits_uri: str, ratio: float):
        data = dsl.importer(artifact_uri=splits_uri, artifact_class=Dataset, reimport=False)
        train_component(config_yaml=config_yaml, splits=data.output, ratio=ratio, seed=0)

    monkeypatch.setenv("FACO_NPROC", "2")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path))
    # the train slice of the resolved config, as plan hands it to the train task
    train_slice = plan((root / "configs" / "smoke.yaml").read_text()).slices["train"]
    train_only(config_yaml=train_slice, splits_uri=str(splits), ratio=0.5)
    (model,) = [p.parent for p in tmp_path.rglob("train/model/train_stats.json")]
    _same_training(model, single)
