"""Train components: fine-tune on one split; continue from a model (recovery).

Each uses every GPU of its pod: with more than one visible, the stage runs as
`torchrun --standalone --nproc-per-node=<visible GPUs> -m faco.training.launch CONFIG --splits SPLITS
--ratio RATIO --out MODEL --work-dir $FACO_WORK_ROOT/<key>/<ratio>` (`faco.training.torchrun`); with one,
in the task's process. The work dir is on the checkpoint volume, so a retried task resumes.
"""

from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output

from faco import images


@dsl.component(base_image=images.TRAIN.ref, install_kfp_package=False)
def train(config_yaml: str, splits: Input[Dataset], ratio: float, model: Output[Model]):
    """Fine-tune the configured base model on the split of `ratio`, on every GPU of the pod.

    Runs `torchrun --standalone --nproc-per-node=<visible GPUs> -m faco.training.launch` when more
    than one GPU is visible; checkpoints on the checkpoint volume ($FACO_WORK_ROOT).

    Args:
        config_yaml: This task's slice of the resolved config (plan's output `train_config`).
        splits: The corrupt stage's splits artifact (one training split per ratio).
        ratio: Corruption ratio of the split to train on.
        model: The fine-tuned model artifact (weights, tokenizer, loss logs).
    """
    from pathlib import Path

    from faco.kfp_glue import train_model

    train_model(config_yaml, Path(splits.path), ratio, Path(model.path))


@dsl.component(base_image=images.TRAIN.ref, install_kfp_package=False)
def train_from(config_yaml: str, splits: Input[Dataset], start: Input[Model], ratio: float,
               model: Output[Model]):
    """Continue training `start` on the split of `ratio` (recovery: ratio 0), on every GPU of the pod.

    Runs `torchrun --standalone --nproc-per-node=<visible GPUs> -m faco.training.launch ... --start START`
    when more than one GPU is visible.

    Args:
        config_yaml: This task's slice of the resolved config (plan's output `train_config`).
        splits: The splits artifact to train on.
        start: The model artifact to continue from.
        ratio: Corruption ratio of the split to train on (0.0: the clean split).
        model: The retrained model artifact.
    """
    from pathlib import Path

    from faco.kfp_glue import train_model

    train_model(config_yaml, Path(splits.path), ratio, Path(model.path), start=Path(start.path))


@dsl.component(base_image=images.TRAIN.ref, install_kfp_package=False)
def recover(config_yaml: str, splits: Input[Dataset], models: Input[list[Model]], model: Output[Model]):
    """Recovery of a study: the model of `train.recovery.from_ratio`, retrained on the clean split.

    Runs `torchrun --standalone --nproc-per-node=<visible GPUs> -m faco.training.launch ... --start START`
    when more than one GPU is visible.

    Args:
        config_yaml: This task's slice of the resolved config (plan's output `train_config`).
        splits: The study's splits artifact.
        models: Every model the ratio loop trained; the one of `train.recovery.from_ratio` is retrained.
        model: The recovered model artifact.
    """
    from pathlib import Path

    from faco.config_slices import load
    from faco.kfp_glue import pick_by_ratio, train_model

    study = load(config_yaml)
    if study.train.recovery is None:
        raise ValueError("recover runs only when the config asks for recovery (train.recovery)")
    start = pick_by_ratio([Path(m.path) for m in models], study.train.recovery.from_ratio)
    train_model(config_yaml, Path(splits.path), 0.0, Path(model.path), start=start)
