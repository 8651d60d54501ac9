"""Kubeflow training-job objects (pure functions returning dicts) for multi-node training.

Every node runs `torchrun … -m faco.training.launch …`; the operator injects the rendezvous
(PET_NODE_RANK, PET_MASTER_ADDR, PET_MASTER_PORT), so the same command serves 1 or N nodes.
Data travels through the checkpoint PVC, mounted at the same path in every pod.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from faco.k8s.settings import ClusterSettings

PYTORCHJOB = ("kubeflow.org", "v1", "pytorchjobs", "PyTorchJob")
TRAINJOB = ("trainer.kubeflow.org", "v1alpha1", "trainjobs", "TrainJob")
#: The replicated job (and container) of the torch runtime that a TrainJob override targets.
TRAINJOB_NODE = "node"
SHM_VOLUME = "dshm"
CKPT_VOLUME = "checkpoints"


@dataclass(frozen=True)
class TrainJobRequest:
    """What one multi-node training job runs."""

    name: str
    namespace: str
    image: str
    train_args: list[str]


def api_of(job_api: str) -> tuple[str, str, str, str]:
    """(group, version, plural, kind) of a job API name."""
    return {"PyTorchJob": PYTORCHJOB, "TrainJob": TRAINJOB}[job_api]


def job_name(config_hash: str, ratio_tag: str, unique: str) -> str:
    """A DNS-1035 name, short enough for the pod names the operators derive from it."""
    suffix = hashlib.sha256(unique.encode()).hexdigest()[:6]
    tag = re.sub(r"[^a-z0-9]+", "-", ratio_tag.lower()).strip("-")
    return f"faco-{config_hash[:8]}-{tag}-{suffix}"[:45].rstrip("-")


def torchrun_command(settings: ClusterSettings, train_args: list[str]) -> list[str]:
    nodes = settings.multi_node.nodes
    return ["torchrun", f"--nnodes={nodes}", f"--nproc-per-node={settings.gpus_per_node}",
            "-m", "faco.training.launch", *train_args]


def _env(settings: ClusterSettings) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [
        {"name": "FACO_CACHE_DIR", "value": f"{settings.checkpoint_mount}/cache"},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
    ]
    for ref in (settings.secrets.huggingface, settings.secrets.s3):
        env += [{"name": var, "valueFrom": {"secretKeyRef": {"name": ref.name, "key": key, "optional": True}}}
                for key, var in ref.keys.items()]
    return env


def _volumes(settings: ClusterSettings) -> list[dict[str, Any]]:
    return [
        {"name": SHM_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": settings.shm_size}},
        {"name": CKPT_VOLUME, "persistentVolumeClaim": {"claimName": settings.checkpoint_pvc}},
    ]


def _mounts(settings: ClusterSettings) -> list[dict[str, Any]]:
    return [{"name": SHM_VOLUME, "mountPath": "/dev/shm"},
            {"name": CKPT_VOLUME, "mountPath": settings.checkpoint_mount}]


def _resources(settings: ClusterSettings) -> dict[str, Any]:
    gpus = str(settings.gpus_per_node)
    return {
        "limits": {settings.accelerator_type: gpus},
        "requests": {"cpu": settings.train_cpu, "memory": settings.train_memory,
                     settings.accelerator_type: gpus},
    }


def _tolerations(settings: ClusterSettings) -> list[dict[str, Any]]:
    return [t.model_dump(exclude_none=True) for t in settings.tolerations]


def _labels(req: TrainJobRequest) -> dict[str, str]:
    return {"app.kubernetes.io/part-of": "faco", "app.kubernetes.io/component": "train", "faco/job": req.name}


def pytorchjob(req: TrainJobRequest, settings: ClusterSettings) -> dict[str, Any]:
    """A kubeflow.org/v1 PyTorchJob: one Master and nodes-1 Workers, `gpus_per_node` GPUs each."""
    group, version, _, kind = PYTORCHJOB
    pod = {
        "metadata": {"labels": _labels(req)},
        "spec": {
            "containers": [{
                "name": "pytorch",  # the operator requires this container name
                "image": req.image,
                "command": torchrun_command(settings, req.train_args),
                "env": _env(settings),
                "resources": _resources(settings),
                "volumeMounts": _mounts(settings),
            }],
            "volumes": _volumes(settings),
            "nodeSelector": dict(settings.node_selector),
            "tolerations": _tolerations(settings),
        },
    }
    replicas: dict[str, Any] = {"Master": {"replicas": 1, "restartPolicy": "OnFailure", "template": pod}}
    if settings.multi_node.nodes > 1:
        replicas["Worker"] = {"replicas": settings.multi_node.nodes - 1, "restartPolicy": "OnFailure",
                              "template": pod}
    return {
        "apiVersion": f"{group}/{version}", "kind": kind,
        "metadata": {"name": req.name, "namespace": req.namespace, "labels": _labels(req)},
        "spec": {
            "nprocPerNode": str(settings.gpus_per_node),
            "runPolicy": {"backoffLimit": 0, "cleanPodPolicy": "None"},
            "pytorchReplicaSpecs": replicas,
        },
    }


def trainjob(req: TrainJobRequest, settings: ClusterSettings) -> dict[str, Any]:
    """A trainer.kubeflow.org/v1alpha1 TrainJob on the configured ClusterTrainingRuntime."""
    group, version, _, kind = TRAINJOB
    return {
        "apiVersion": f"{group}/{version}", "kind": kind,
        "metadata": {"name": req.name, "namespace": req.namespace, "labels": _labels(req)},
        "spec": {
            "runtimeRef": {"name": settings.multi_node.runtime, "kind": "ClusterTrainingRuntime",
                           "apiGroup": group},
            "trainer": {
                "image": req.image,
                "command": torchrun_command(settings, req.train_args),
                "numNodes": settings.multi_node.nodes,
                "numProcPerNode": settings.gpus_per_node,
                "resourcesPerNode": _resources(settings),
                "env": _env(settings),
            },
            "podSpecOverrides": [{
                "targetJobs": [{"name": TRAINJOB_NODE}],
                "nodeSelector": dict(settings.node_selector),
                "tolerations": _tolerations(settings),
                "volumes": _volumes(settings),
                "containers": [{"name": TRAINJOB_NODE, "volumeMounts": _mounts(settings)}],
            }],
        },
    }


def build(req: TrainJobRequest, settings: ClusterSettings) -> dict[str, Any]:
    """The job object of the API chosen by `settings.multi_node.job_api`."""
    builder = pytorchjob if settings.multi_node.job_api == "PyTorchJob" else trainjob
    return builder(req, settings)
