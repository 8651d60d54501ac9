"""Multi-node train component: runs the train stage as a Kubeflow training job (PyTorchJob or TrainJob)."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Model, Output

from faco import images


@dsl.component(base_image=images.CPU.ref, install_kfp_package=False)
def launch_training_job(config_yaml: str, splits: Input[Dataset], ratio: float, seed: int, settings_json: str,
                        image: str, unique: str, model: Output[Model], snapshots: Output[Artifact],
                        logs: Output[Artifact]):
    """Create the job, stream its conditions, fail with the job's reason, copy the model back.

    Every node of the job runs `torchrun --nnodes=N --nproc-per-node=G -m faco.stages.train ...`.

    Args:
        config_yaml: This task's slice of the resolved config (plan's output `train_config`).
        splits: The corrupt stage's splits artifact.
        ratio: Corruption ratio of the split to train on.
        seed: train.seed of this cell of the grid.
        settings_json: The cluster settings the pipeline was compiled with (JSON).
        image: The training image the job's pods run.
        unique: A per-task id that makes the job name unique.
        model: The fine-tuned model, copied back from the checkpoint volume.
        snapshots: The epoch snapshots but the last, copied back from the checkpoint volume.
        logs: The loss logs and training statistics alone, for the analysis.
    """
    from pathlib import Path

    from faco.kfp_glue import launch_training_job as launch

    launch(config_yaml, Path(splits.path), ratio, seed, settings_json, image, unique, Path(model.path),
           Path(snapshots.path), Path(logs.path))
