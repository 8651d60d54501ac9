"""What each task of a compiled pipeline gets on a cluster, read from the package (its YAML): image,
user, volumes and labels, for running the tasks locally in pod-shaped containers (`faco.kfp_docker`).

kfp.local ignores the Kubernetes platform spec (kfp-kubernetes settings); these are the parts that
change what a task's container can see or do. GPUs, node selectors, tolerations, resources and
Secrets (optional ones, with no values locally) are left out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml


@dataclass(frozen=True)
class Pod:
    """One task's pod: `user` ("uid:gid", the security context), `claims` (PVC name -> mount path),
    `memory` (emptyDir mount path -> size limit, "" for none) and pod `labels`."""

    user: str | None = None
    claims: dict[str, str] = field(default_factory=dict)
    memory: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)


def _documents(package_text: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(pipeline spec, Kubernetes deployment spec) of a compiled package."""
    docs = [d for d in yaml.safe_load_all(package_text) if d]
    spec = docs[0]
    platform: dict[str, Any] = next((d for d in docs[1:] if "platforms" in d), {})
    return spec, platform.get("platforms", {}).get("kubernetes", {}).get("deploymentSpec", {}).get("executors", {})


def _claim(mount: dict[str, Any]) -> str:
    return str(mount.get("constant") or mount.get("pvcNameParameter", {}).get("runtimeValue", {}).get("constant"))


def _pod(settings: dict[str, Any]) -> Pod:
    ctx = settings.get("securityContext", {})
    user = f"{ctx['runAsUser']}:{ctx.get('runAsGroup', ctx['runAsUser'])}" if "runAsUser" in ctx else None
    return Pod(user=user,
               claims={_claim(m): m["mountPath"] for m in settings.get("pvcMount", [])},
               memory={m["mountPath"]: str(m.get("sizeLimit", "")) for m in settings.get("emptyDirMounts", [])},
               labels=dict(settings.get("podMetadata", {}).get("labels", {})))


def pods(package_text: str) -> dict[str, Pod]:
    """Task folder name (its component's name without `comp-`, as kfp.local names the folder) -> Pod."""
    spec, executors = _documents(package_text)
    return {name.removeprefix("comp-"): _pod(executors.get(comp["executorLabel"], {}))
            for name, comp in spec.get("components", {}).items() if "executorLabel" in comp}


def task_images(package_text: str) -> set[str]:
    """Every image the package's tasks run in."""
    spec, _ = _documents(package_text)
    return {e["container"]["image"] for e in spec.get("deploymentSpec", {}).get("executors", {}).values()
            if "container" in e}
