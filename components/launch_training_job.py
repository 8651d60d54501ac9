"""Multi-node train component: runs the train stage as a Kubeflow training job (PyTorchJob or TrainJob)."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output

from faco import images


@dsl.component(base_image=images.CPU.ref, install_kfp_package=False)
def launch_training_job(config_yaml: str, splits: Input[Dataset], ratio: float, settings_json: str,
                        image: str, unique: str, model: Output[Model]):
    """Create the job, stream its conditions, fail with the job's reason, copy the model back."""
    from pathlib import Path

    from kubernetes import client, config

    from faco.config import parse_config
    from faco.k8s.launcher import run_job
    from faco.k8s.settings import ClusterSettings
    from faco.stages.corrupt import ratio_tag

    config.load_incluster_config()
    study = parse_config(config_yaml, "config_yaml")
    run_job(client.CustomObjectsApi(), ClusterSettings.model_validate_json(settings_json), image,
            config_yaml=config_yaml, config_hash=study.config_hash(), ratio_tag=ratio_tag(ratio),
            unique=unique, splits=Path(splits.path), ratio=ratio, out=Path(model.path))
