"""Container images of the pipelines, in one place.

An image is `<registry>/<org>/<name>:<tag>`; registry, org and tag default to the project's
(`ghcr.io/faco-project`, the package version) and are set at compile time from the cluster
settings (`images:` in the settings file, or `faco kfp compile --registry/--org/--tag`), which
call `configure` before the components are imported. Pin an image by digest for reproducible
cluster runs with the environment variable named in `env` (read at compile time): the compiled
YAML then names `repo@sha256:…`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

VERSION = "0.1.0"
REGISTRY = "ghcr.io"
ORG = "faco-project"


@dataclass(frozen=True)
class Image:
    """An image reference: registry, org, name and tag, optionally pinned by digest."""

    name: str
    env: str
    registry: str = REGISTRY
    org: str = ORG
    tag: str = VERSION

    @property
    def repository(self) -> str:
        return "/".join(part for part in (self.registry, self.org, self.name) if part)

    @property
    def ref(self) -> str:
        """`repo@sha256:…` when the env var pins a digest, else `repo:tag`."""
        digest = os.environ.get(self.env)
        if digest:
            if not digest.startswith("sha256:") or len(digest) != 71:
                raise ValueError(f"{self.env}: a digest must be sha256:<64 hex> (got {digest!r})")
            return f"{self.repository}@{digest}"
        return f"{self.repository}:{self.tag}"


#: The images' non-root user and group (docker/Dockerfile.*: `USER 10001:10001`) and its HOME.
#: Pods run as this identity; with a read-only root filesystem, /tmp and HOME are emptyDirs.
USER_ID = 10001
GROUP_ID = 10001
HOME_DIR = "/home/faco"

#: Light stages (ingest, generate, corrupt, analyze, report, the training-job launcher): CPU only.
CPU = Image("faco-cpu", env="FACO_IMAGE_CPU_DIGEST")
#: Training and evaluation: CUDA, PyTorch, DeepSpeed, lm-eval; also the multi-node job's image.
TRAIN = Image("faco-train", env="FACO_IMAGE_TRAIN_DIGEST")


def configure(registry: str, org: str, tag: str) -> None:
    """Point CPU and TRAIN at `registry/org/<name>:tag`. Call before the components are imported:
    each names its image when it is defined."""
    global CPU, TRAIN
    CPU = replace(CPU, registry=registry, org=org, tag=tag)
    TRAIN = replace(TRAIN, registry=registry, org=org, tag=tag)
