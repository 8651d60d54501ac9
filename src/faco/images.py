"""Container images of the pipelines, in one place.

Pin an image by digest for reproducible cluster runs: set `digest` here (or the environment
variable named in `env`, read at compile time) and the compiled YAML names `repo@sha256:…`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Image:
    """An image reference: repository and tag, optionally pinned by digest."""

    repository: str
    tag: str
    digest: str | None = None
    env: str | None = None

    @property
    def ref(self) -> str:
        """`repo@sha256:…` when pinned (env var first, then `digest`), else `repo:tag`."""
        digest = (os.environ.get(self.env) if self.env else None) or self.digest
        if digest:
            if not digest.startswith("sha256:") or len(digest) != 71:
                raise ValueError(f"{self.repository}: digest must be sha256:<64 hex> (got {digest!r})")
            return f"{self.repository}@{digest}"
        return f"{self.repository}:{self.tag}"


VERSION = "0.1.0"

#: The images' non-root user and group (docker/Dockerfile.*: `USER 10001:10001`) and its HOME.
#: Pods run as this identity; with a read-only root filesystem, /tmp and HOME are emptyDirs.
USER_ID = 10001
GROUP_ID = 10001
HOME_DIR = "/home/faco"

#: Light stages (ingest, generate, corrupt, analyze, report, the training-job launcher): CPU only.
CPU = Image("ghcr.io/faco-project/faco-cpu", VERSION, env="FACO_IMAGE_CPU_DIGEST")
#: Training and evaluation: CUDA, PyTorch, DeepSpeed, lm-eval; also the multi-node job's image.
TRAIN = Image("ghcr.io/faco-project/faco-train", VERSION, env="FACO_IMAGE_TRAIN_DIGEST")
