"""Multi-node train component: runs the train stage as a Kubeflow training job (PyTorchJob or TrainJob)."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output

from faco import images


@dsl.component(base_image=images.CPU.ref, install_kfp_package=False)
def launch_training_job(config_yaml: str, splits: Input[Dataset], ratio: float, settings_json: str,
                        image: str, unique: str, model: Output[Model]):
    """Create the job, stream its conditions, fail with the job's reason, copy the model back.

    Every node of the job runs `torchrun --nnodes=N --nproc-per-node=G -m faco.training.launch ...`.

    Args:
        config_yaml: This task's slice of the resolved config (plan's output `train_config`).
        splits: The corrupt stage's splits artifact.
        ratio: Corruption ratio of the split to train on.
        settings_json: The cluster settings the pipeline was compiled with (JSON).
        image: The training image the job's pods run.
        unique: A per-task id that makes the job name unique.
        model: The fine-tuned model, copied back from the checkpoint volume.
    """
    import hashlib
    from pathlib import Path

    from kubernetes import client, config

    from faco.config_slices import load
    from faco.k8s.launcher import run_job
    from faco.k8s.settings import ClusterSettings
    from faco.ratios import ratio_tag

    config.load_incluster_config()
    load(config_yaml)  # a bad slice fails here, before a job is created
    run_job(client.CustomObjectsApi(), ClusterSettings.model_validate_json(settings_json), image,
            config_yaml=config_yaml, config_hash=hashlib.sha256(config_yaml.encode()).hexdigest(),
            ratio_tag=ratio_tag(ratio),
            unique=unique, splits=Path(splits.path), ratio=ratio, out=Path(model.path))
