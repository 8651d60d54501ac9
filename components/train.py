"""Train components: fine-tune on one split; continue from a model (recovery); the untrained base model.

Each training task uses every GPU of its pod: with more than one visible, the stage runs as
`torchrun --standalone --nproc-per-node=<visible GPUs> -m faco.stages.train CONFIG --splits SPLITS
--ratio RATIO --out MODEL --work-dir $FACO_WORK_ROOT/<key>/<ratio>` (`faco.stages.train.run`); with one,
in the task's process. The work dir is on the checkpoint volume, so a retried task resumes.

A training task writes three artifacts, so that each later task downloads only what it reads:
`model` (the final weights), `snapshots` (the epoch snapshots before the last, for per-epoch
evaluation; empty without `train.save_every_epoch`) and `logs` (loss logs and statistics, for analyze).
"""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Model, Output

from faco import images


@dsl.component(base_image=images.TRAIN.ref, install_kfp_package=False)
def train(config_yaml: str, splits: Input[Dataset], ratio: float, seed: int, model: Output[Model],
          snapshots: Output[Artifact], logs: Output[Artifact]):
    """Fine-tune the configured base model on the split of `ratio`, on every GPU of the pod.

    Runs `torchrun --standalone --nproc-per-node=<visible GPUs> -m faco.stages.train` when more
    than one GPU is visible; checkpoints on the checkpoint volume ($FACO_WORK_ROOT).

    Args:
        config_yaml: This task's slice of the resolved config (plan's output `train_config`).
        splits: The corrupt stage's splits artifact (one training split per ratio).
        ratio: Corruption ratio of the split to train on.
        seed: train.seed of this cell of the grid.
        model: The fine-tuned model artifact (final weights, tokenizer, loss logs).
        snapshots: The epoch snapshots but the last (the model is that one), for per-epoch evaluation.
        logs: The loss logs and training statistics alone, for the analysis.
    """
    from pathlib import Path

    from faco.kfp_glue import train_model

    train_model(config_yaml, Path(splits.path), ratio, seed, Path(model.path), Path(snapshots.path),
                Path(logs.path))


@dsl.component(base_image=images.TRAIN.ref, install_kfp_package=False)
def train_from(config_yaml: str, splits: Input[Dataset], start: Input[Model], ratio: float, seed: int,
               model: Output[Model], snapshots: Output[Artifact], logs: Output[Artifact]):
    """Continue training `start` on the split of `ratio` (recovery: ratio 0), on every GPU of the pod.

    Runs `torchrun --standalone --nproc-per-node=<visible GPUs> -m faco.stages.train ... --start START`
    when more than one GPU is visible.

    Args:
        config_yaml: This task's slice of the resolved config (plan's output `train_config`).
        splits: The splits artifact to train on.
        start: The model artifact to continue from (the only model this task downloads).
        ratio: Corruption ratio of the split to train on (0.0: the clean split).
        seed: train.seed of the run.
        model: The retrained model artifact.
        snapshots: The epoch snapshots but the last, for per-epoch evaluation.
        logs: The loss logs and training statistics alone, for the analysis.
    """
    from pathlib import Path

    from faco.kfp_glue import train_model

    train_model(config_yaml, Path(splits.path), ratio, seed, Path(model.path), Path(snapshots.path),
                Path(logs.path), start=Path(start.path))


@dsl.component(base_image=images.TRAIN.ref, install_kfp_package=False)
def base_model(config_yaml: str, splits: Input[Dataset], seed: int, model: Output[Model]):
    """The untrained base model as a model artifact: the base row of the analysis (`faco study`'s train/base).

    Args:
        config_yaml: This task's slice of the resolved config (plan's output `train_config`).
        splits: The splits artifact (a tiny random model's tokenizer is trained on its clean split).
        seed: train.seed of the first seed of the study.
        model: The base model artifact (meta base: true).
    """
    from pathlib import Path

    from faco.kfp_glue import base_model as make

    make(config_yaml, Path(splits.path), seed, Path(model.path))
