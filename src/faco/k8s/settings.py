"""Compile-time cluster settings of the pipelines: GPUs, placement, volumes, secrets, multi-node.

They are baked into the compiled YAML (the committed YAML uses the defaults). Load other values
from a YAML file with `load_settings`. Secrets appear here by NAME only, never by value.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from faco import images
from faco.errors import ConfigError

#: Pod label of pipeline tasks that run model-written code (HumanEval with
#: `evaluate.allow_code_execution`). The NetworkPolicies `isolate-untrusted-code` in manifests/
#: select it; tests compare the two.
UNTRUSTED_CODE_LABEL = "faco.dev/executes-untrusted-code"
#: `FACO_SANDBOX` of those tasks: strict where namespaces can be made, else weak. A pod (UID 10001, no
#: capabilities, seccomp RuntimeDefault) cannot make the user namespaces of the strict mode, so there the
#: weak mode runs, confined by Landlock and seccomp (docs/evaluation.md#the-sandbox-in-a-pod,
#: tests/test_sandbox_pod.py); a kfp.local run as root gets the strict mode.
POD_SANDBOX_MODE = "auto"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Toleration(_Strict):
    key: str | None = None
    operator: Literal["Equal", "Exists"] = "Exists"
    value: str | None = None
    effect: Literal["NoExecute", "NoSchedule", "PreferNoSchedule"] | None = None


class SecretRef(_Strict):
    """A Kubernetes Secret exposed as environment variables: secret key -> env var name."""

    name: str
    keys: dict[str, str]


class Secrets(_Strict):
    """Fixed Secret names. Create them in the run namespace (docs/kubeflow.md); all are optional."""

    openai: SecretRef = SecretRef(name="faco-openai", keys={"api-key": "OPENAI_API_KEY"})
    huggingface: SecretRef = SecretRef(name="faco-hf", keys={"token": "HF_TOKEN"})
    s3: SecretRef = SecretRef(
        name="faco-s3",
        keys={"access-key-id": "AWS_ACCESS_KEY_ID", "secret-access-key": "AWS_SECRET_ACCESS_KEY",
              "endpoint-url": "AWS_ENDPOINT_URL"},
    )


class MultiNode(_Strict):
    """Training on several nodes through a Kubeflow training job (1 node: the train task itself)."""

    nodes: int = Field(default=1, ge=1)
    job_api: Literal["PyTorchJob", "TrainJob"] = "PyTorchJob"
    runtime: str = Field(default="faco-torch", description="training runtime of a TrainJob")
    runtime_kind: Literal["TrainingRuntime", "ClusterTrainingRuntime"] = Field(
        default="TrainingRuntime",
        description="faco-torch: the namespaced restricted runtime in manifests/base (faco.k8s.jobs.training_runtime)")
    namespace: str | None = Field(default=None, description="default: the launcher pod's namespace (the pipeline's)")
    service_account: str | None = Field(
        default="faco-workload", description="of the training pods (manifests/base creates it); null: the namespace's")
    poll_seconds: int = Field(default=30, ge=1)
    timeout_hours: float = Field(default=72.0, gt=0)


class Images(_Strict):
    """Where the images live: `<registry>/<org>/faco-cpu:<tag>` and `.../faco-train:<tag>` (faco.images)."""

    registry: str = images.REGISTRY
    org: str = Field(default=images.ORG, description="organisation or project path below the registry")
    tag: str = images.VERSION


class ClusterSettings(_Strict):
    """Everything about the cluster that the compiled pipelines hard-code."""

    gpus_per_node: int = Field(default=8, ge=1)
    eval_gpus: int = Field(default=1, ge=0)
    accelerator_type: str = "nvidia.com/gpu"
    node_selector: dict[str, str] = {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}
    tolerations: list[Toleration] = [Toleration(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule")]
    train_cpu: str = "64"
    train_memory: str = "900G"
    eval_cpu: str = "8"
    eval_memory: str = "120G"
    light_cpu: str = "2"
    light_memory: str = "8G"
    shm_size: str = "64Gi"
    tmp_size: str = Field(default="100Gi", description="/tmp emptyDir of training pods (HF cache, torch extensions)")
    home_size: str = Field(default="4Gi", description="$HOME emptyDir of training pods")
    checkpoint_pvc: str = "faco-checkpoints"
    checkpoint_mount: str = "/mnt/checkpoints"
    sweep_parallelism: int = Field(default=0, ge=0, description="studies a sweep runs at once (0: all)")
    secrets: Secrets = Secrets()
    multi_node: MultiNode = MultiNode()
    images: Images = Images()


def load_settings(path: Path | None) -> ClusterSettings:
    """Settings from a YAML file (unknown keys are errors); the defaults when `path` is None."""
    if path is None:
        return ClusterSettings()
    data = yaml.safe_load(path.read_text()) or {}
    try:
        return ClusterSettings.model_validate(data)
    except ValueError as e:
        raise ConfigError(f"{path}: {e}") from None
