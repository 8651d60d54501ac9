"""The evaluation cache: JSON results under `cache_dir()/eval`, keyed by what determines them.

A key names the weights by the sha256 of their files' contents (never by manifest fields, so
swapped weights are a miss), plus the task, its settings and the versions of everything that
renders or scores it.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from faco import artifacts
from faco.paths import cache_dir


def tree_digest(root: Path) -> str:
    """sha256 over (path relative to `root`, content sha256) of every file below `root`.

    Paths are relative, so identical weights saved twice (the last epoch's checkpoint and the final
    model) share one digest.
    """
    files = sorted(artifacts._hash_tree(root).items())
    return hashlib.sha256(json.dumps(files).encode()).hexdigest()


@dataclass(frozen=True)
class CacheKey:
    """Everything a cached result depends on; `digest` is its file name."""

    kind: str  # "score" or "probes"
    weights: str  # tree_digest of the checkpoint folder
    task: str  # lm-eval task, or the probe questions' sha256
    settings: str  # canonical JSON of the benchmark spec, shots, seed, backend (or probe length)
    task_version: str | None = None  # sha256 of the rendered task YAML and its data
    lm_eval: str | None = None
    helpers: str | None = None  # tree_digest of faco's twin helper modules, when a twin runs
    hub: str | None = None  # tree_digest of faco's hub tasks, when one runs

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()


def settings(**values: Any) -> str:
    """Canonical JSON of a key's settings."""
    return json.dumps(values, sort_keys=True, default=str)


class Cache:
    """Results by CacheKey under cache_dir()/eval (a no-op when disabled)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.root = cache_dir() / "eval"

    def _path(self, key: CacheKey) -> Path:
        digest = key.digest()
        return self.root / digest[:2] / f"{digest}.json"

    def get(self, key: CacheKey) -> Any:
        path = self._path(key)
        return json.loads(path.read_text()) if self.enabled and path.is_file() else None

    def put(self, key: CacheKey, value: Any) -> None:
        if not self.enabled:
            return
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(value, sort_keys=True))
        tmp.replace(path)
