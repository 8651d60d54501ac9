"""Kubeflow training-job objects (pure functions returning dicts) for multi-node training.

Every node runs `torchrun … -m faco.stages.train …`; the operator injects the rendezvous
(PET_NODE_RANK, PET_MASTER_ADDR, PET_MASTER_PORT), so the same command serves 1 or N nodes.
Data travels through the checkpoint PVC, mounted at the same path in every pod.

Pods meet the `restricted` Pod Security level: the images' non-root user, RuntimeDefault seccomp,
no privilege escalation, all capabilities dropped, a read-only root filesystem with emptyDirs on
/tmp and $HOME, and a memory emptyDir on /dev/shm for NCCL. A TrainJob cannot set security
contexts (v1alpha1 `podSpecOverrides` has no such field): its runtime must, see `training_runtime`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from faco import images
from faco.k8s.settings import ClusterSettings

PYTORCHJOB = ("kubeflow.org", "v1", "pytorchjobs", "PyTorchJob")
TRAINJOB = ("trainer.kubeflow.org", "v1alpha1", "trainjobs", "TrainJob")
#: The replicated job (and container) of the torch runtime that a TrainJob override targets.
TRAINJOB_NODE = "node"
SHM_VOLUME = "dshm"
TMP_VOLUME = "tmp"
HOME_VOLUME = "home"
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
            "-m", "faco.stages.train", *train_args]


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
        {"name": TMP_VOLUME, "emptyDir": {"sizeLimit": settings.tmp_size}},
        {"name": HOME_VOLUME, "emptyDir": {"sizeLimit": settings.home_size}},
        {"name": CKPT_VOLUME, "persistentVolumeClaim": {"claimName": settings.checkpoint_pvc}},
    ]


def _mounts(settings: ClusterSettings) -> list[dict[str, Any]]:
    return [{"name": SHM_VOLUME, "mountPath": "/dev/shm"},
            {"name": TMP_VOLUME, "mountPath": "/tmp"},
            {"name": HOME_VOLUME, "mountPath": images.HOME_DIR},
            {"name": CKPT_VOLUME, "mountPath": settings.checkpoint_mount}]


def pod_security_context() -> dict[str, Any]:
    """Pod-level securityContext: the images' non-root user; volumes group-owned without a full chown."""
    return {
        "runAsNonRoot": True, "runAsUser": images.USER_ID, "runAsGroup": images.GROUP_ID,
        "fsGroup": images.GROUP_ID,
        # a multi-terabyte checkpoint PVC would be chowned recursively at every pod start otherwise
        "fsGroupChangePolicy": "OnRootMismatch",
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> dict[str, Any]:
    """Container-level securityContext of the `restricted` Pod Security level, read-only root."""
    return {
        "runAsNonRoot": True, "privileged": False, "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]},
    }


def _resources(settings: ClusterSettings) -> dict[str, Any]:
    """Limits equal to requests: Guaranteed QoS (evicted last; whole cores under the static CPU manager)."""
    requests = {"cpu": settings.train_cpu, "memory": settings.train_memory,
                settings.accelerator_type: str(settings.gpus_per_node)}
    return {"limits": dict(requests), "requests": requests}


def _tolerations(settings: ClusterSettings) -> list[dict[str, Any]]:
    return [t.model_dump(exclude_none=True) for t in settings.tolerations]


#: Labels of every training pod; the `training` NetworkPolicy (manifests/base) selects the component.
POD_LABELS = {"app.kubernetes.io/part-of": "faco", "app.kubernetes.io/component": "train"}
#: Deliberate checkov exception, written on the pod template (docs/deploy.md lists it).
POD_ANNOTATIONS = {
    "checkov.io/skip1": "CKV_K8S_35=huggingface_hub and boto3/s3fs read tokens and keys from the "
                        "environment; the Secrets are optional and referenced by name only",
}


def _labels(req: TrainJobRequest) -> dict[str, str]:
    return {**POD_LABELS, "faco/job": req.name}


def pytorchjob(req: TrainJobRequest, settings: ClusterSettings) -> dict[str, Any]:
    """A kubeflow.org/v1 PyTorchJob: one Master and nodes-1 Workers, `gpus_per_node` GPUs each."""
    group, version, _, kind = PYTORCHJOB
    spec: dict[str, Any] = {
        "securityContext": pod_security_context(),
        "automountServiceAccountToken": False,  # training pods never call the API server
        "containers": [{
            "name": "pytorch",  # the operator requires this container name
            "image": req.image,
            "command": torchrun_command(settings, req.train_args),
            "env": _env(settings),
            "resources": _resources(settings),
            "securityContext": container_security_context(),
            "volumeMounts": _mounts(settings),
        }],
        "volumes": _volumes(settings),
        "nodeSelector": dict(settings.node_selector),
        "tolerations": _tolerations(settings),
    }
    if settings.multi_node.service_account:
        spec["serviceAccountName"] = settings.multi_node.service_account
    pod = {"metadata": {"labels": _labels(req), "annotations": dict(POD_ANNOTATIONS)}, "spec": spec}
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
    """A trainer.kubeflow.org/v1alpha1 TrainJob on the configured runtime (security comes from the runtime)."""
    group, version, _, kind = TRAINJOB
    override: dict[str, Any] = {
        "targetJobs": [{"name": TRAINJOB_NODE}],
        "nodeSelector": dict(settings.node_selector),
        "tolerations": _tolerations(settings),
        "volumes": _volumes(settings),
        "containers": [{"name": TRAINJOB_NODE, "volumeMounts": _mounts(settings)}],
    }
    if settings.multi_node.service_account:
        override["serviceAccountName"] = settings.multi_node.service_account
    return {
        "apiVersion": f"{group}/{version}", "kind": kind,
        "metadata": {"name": req.name, "namespace": req.namespace, "labels": _labels(req)},
        "spec": {
            "runtimeRef": {"name": settings.multi_node.runtime, "kind": settings.multi_node.runtime_kind,
                           "apiGroup": group},
            "trainer": {
                "image": req.image,
                "command": torchrun_command(settings, req.train_args),
                "numNodes": settings.multi_node.nodes,
                "numProcPerNode": settings.gpus_per_node,
                "resourcesPerNode": _resources(settings),
                "env": _env(settings),
            },
            "podSpecOverrides": [override],
        },
    }


def training_runtime(settings: ClusterSettings, namespace: str | None = None) -> dict[str, Any]:
    """The runtime a TrainJob names (`multi_node.runtime`), with the restricted security contexts.

    A namespaced TrainingRuntime by default (`multi_node.runtime_kind`), so applying it needs no
    cluster rights; `manifests/base/trainer-runtime/training-runtime.yaml` is this object. Each
    TrainJob brings its image, command, resources, volumes and mounts; the runtime brings torch
    and the identity.
    """
    group, version, _, _ = TRAINJOB
    kind = settings.multi_node.runtime_kind
    metadata: dict[str, Any] = {"name": settings.multi_node.runtime,
                                "labels": {"app.kubernetes.io/part-of": "faco",
                                           "trainer.kubeflow.org/framework": "torch"}}
    if namespace and kind == "TrainingRuntime":
        metadata["namespace"] = namespace
    pod_spec: dict[str, Any] = {
        "securityContext": pod_security_context(),
        "automountServiceAccountToken": False,
        "containers": [{"name": TRAINJOB_NODE, "image": images.TRAIN.ref,
                        "securityContext": container_security_context()}],
    }
    if settings.multi_node.service_account:
        pod_spec["serviceAccountName"] = settings.multi_node.service_account
    return {
        "apiVersion": f"{group}/{version}", "kind": kind, "metadata": metadata,
        "spec": {
            "mlPolicy": {"numNodes": 1, "torch": {"numProcPerNode": "auto"}},
            "template": {"spec": {"replicatedJobs": [{
                "name": TRAINJOB_NODE,
                # marks the replicated job that runs the trainer (Kubeflow Trainer >= 2.0)
                "template": {"metadata": {"labels": {"trainer.kubeflow.org/trainjob-ancestor-step": "trainer"}},
                             "spec": {"template": {"metadata": {"labels": dict(POD_LABELS),
                                                                "annotations": dict(POD_ANNOTATIONS)},
                                                   "spec": pod_spec}}},
            }]}},
        },
    }


def build(req: TrainJobRequest, settings: ClusterSettings) -> dict[str, Any]:
    """The job object of the API chosen by `settings.multi_node.job_api`."""
    builder = pytorchjob if settings.multi_node.job_api == "PyTorchJob" else trainjob
    return builder(req, settings)
