"""train: keys named as transformers' TrainingArguments, the warm-up step count, `train.trainer_args`."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from transformers import TrainerCallback

from faco.config import FACO_TRAINER_ARGS, Study
from faco.stages import corrupt, train
from faco.training.loop import trainer_arguments

FACO = str(Path(sys.executable).parent / "faco")


class _Watch(TrainerCallback):  # type: ignore[misc]
    """Records the Trainer's arguments and the learning rate each optimizer step starts with."""

    def __init__(self) -> None:
        self.args: Any = None
        self.lrs: list[float] = []

    def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self.args = args

    def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self.lrs.append(kw["lr_scheduler"].get_last_lr()[0])


def test_warmup_steps_and_passthrough_reach_the_trainer(tmp_path: Path, smoke_pairs: Path, smoke: Study) -> None:
    splits = corrupt.run(smoke, smoke_pairs, tmp_path / "splits")
    data = smoke.model_dump(mode="json")
    data["train"].update(
        epochs=1, global_batch_size=4, per_device_batch_size=4, save_every_epoch=False, learning_rate=1e-3,
        lr_scheduler_type="linear", warmup_ratio=0.25, max_grad_norm=0.5, optim="adamw_torch",
        activation_checkpointing=True, trainer_args={"adam_beta2": 0.95, "label_smoothing_factor": 0.0},
    )
    watch = _Watch()
    train.run(Study.model_validate(data), splits, 0.25, tmp_path / "m", callbacks=[watch])
    # 39 examples, batch 4: ceil(39 / 4) = 10 optimizer steps; warm-up ceil(0.25 x 10) = 3 steps
    assert len(watch.lrs) == 10
    assert watch.lrs[:4] == pytest.approx([0.0, 1e-3 / 3, 2e-3 / 3, 1e-3])
    assert watch.lrs[4] < 1e-3 and watch.lrs == sorted(watch.lrs[:4]) + sorted(watch.lrs[4:], reverse=True)
    a = watch.args
    assert (a.warmup_steps, a.lr_scheduler_type, a.max_grad_norm, a.optim) == (3, "linear", 0.5, "adamw_torch")
    assert a.activation_checkpointing is True and a.adam_beta2 == 0.95


def test_every_argument_faco_sets_is_refused_in_trainer_args(smoke: Study, tmp_path: Path) -> None:
    cfg = smoke.train.model_copy(update={"trainer_args": {"adam_beta2": 0.9}})
    args = trainer_arguments(cfg, tmp_path, 1, 8, 1, 0)
    assert set(args) - {"adam_beta2"} == set(FACO_TRAINER_ARGS)


def _validate(tmp_path: Path, root: Path, old: str, new: str) -> subprocess.CompletedProcess[str]:
    text = (root / "configs" / "smoke.yaml").read_text()
    assert old in text
    config = tmp_path / "study.yaml"
    config.write_text(text.replace(old, new))
    return subprocess.run([FACO, "validate", str(config)], capture_output=True, text=True, cwd=tmp_path)


@pytest.mark.parametrize(
    ("new", "message"),
    [
        ("  lr_scheduler: constant\n  epochs: 2",
         "train: lr_scheduler: renamed to lr_scheduler_type (the transformers TrainingArguments name)"),
        ("  gradient_checkpointing: true\n  epochs: 2",
         "train: gradient_checkpointing: renamed to activation_checkpointing (the transformers TrainingArguments "
         "name)"),
        ("  trainer_args: {adam_beta3: 0.9}\n  epochs: 2",
         "train.trainer_args: adam_beta3: not a transformers TrainingArguments field"),
        ("  trainer_args: {learning_rate: 0.1}\n  epochs: 2",
         "train.trainer_args: learning_rate: set by faco (train.learning_rate), not passed through"),
    ],
    ids=["old-key", "deprecated-alias", "unknown-trainer-arg", "faco-sets-it"],
)
def test_config_errors_name_the_key(tmp_path: Path, root: Path, new: str, message: str) -> None:
    assert shutil.which(FACO)
    result = _validate(tmp_path, root, "  epochs: 2", new)
    assert result.returncode == 3, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].endswith(f"study.yaml: {message}"), result.stderr
