"""Point Hugging Face `datasets` and `evaluate` at one cache folder, optionally offline, in this process.

Both libraries read their cache folders and offline switches from the environment once, at import.
`use_cache` therefore sets the environment (for child processes and libraries imported later) and
patches the module constants of the imported ones, and restores both on exit. The folder holds
`hf_datasets/` (an HF datasets cache: prepared Arrow datasets) and `hf_modules/` (the module cache
where HF `evaluate` keeps the metric scripts it loaded from the hub).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

DATASETS = "hf_datasets"
MODULES = "hf_modules"
OFFLINE_VARS = ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE", "HF_EVALUATE_OFFLINE")


def _patches(root: Path, offline: bool) -> list[tuple[Any, str, Any]]:
    import datasets.config as dsc
    import evaluate.config as evc
    import huggingface_hub.constants as hub

    cache = root / DATASETS
    downloads = cache / dsc.DOWNLOADED_DATASETS_DIR
    found: list[tuple[Any, str, Any]] = [
        (dsc, "HF_DATASETS_CACHE", cache), (dsc, "DOWNLOADED_DATASETS_PATH", downloads),
        (dsc, "EXTRACTED_DATASETS_PATH", downloads / dsc.EXTRACTED_DATASETS_DIR),
        (dsc, "HF_MODULES_CACHE", root / MODULES), (evc, "HF_MODULES_CACHE", root / MODULES),
    ]
    if offline:
        found += [(dsc, "HF_HUB_OFFLINE", True), (dsc, "HF_DATASETS_OFFLINE", True),
                  (evc, "HF_EVALUATE_OFFLINE", True), (hub, "HF_HUB_OFFLINE", True)]
    return found


@contextmanager
def use_cache(root: Path, offline: bool) -> Iterator[Path]:
    """Read and write HF datasets under `root/hf_datasets` and evaluate's modules under `root/hf_modules`.

    `offline`: also set HF_DATASETS_OFFLINE, HF_HUB_OFFLINE and HF_EVALUATE_OFFLINE, so hub datasets
    and metrics come from this cache only; otherwise the offline switches are left as they are.
    """
    root = root.resolve()
    env = {"HF_DATASETS_CACHE": str(root / DATASETS), "HF_MODULES_CACHE": str(root / MODULES)}
    if offline:
        env.update(dict.fromkeys(OFFLINE_VARS, "1"))
    saved_env = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    patches = _patches(root, offline)
    saved = [(mod, name, getattr(mod, name)) for mod, name, _ in patches]
    for mod, name, value in patches:
        setattr(mod, name, value)
    try:
        yield root
    finally:
        for mod, name, value in reversed(saved):
            setattr(mod, name, value)
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def working_copy(root: Path, dest: Path) -> Path:
    """A private copy of a cache folder (hard links where the filesystem allows), so that what
    `datasets` writes while reading (lock files, `map` caches) never touches an artifact."""
    for sub in (DATASETS, MODULES):
        if (root / sub).is_dir():
            shutil.copytree(root / sub, dest / sub, copy_function=_link_or_copy)
        else:
            (dest / sub).mkdir(parents=True)
    return dest


def prune(root: Path) -> None:
    """Drop what reading the cache does not need: raw downloads (the prepared Arrow files are kept)
    and lock files."""
    shutil.rmtree(root / DATASETS / "downloads", ignore_errors=True)
    for lock in [*root.rglob("*.lock")]:
        lock.unlink()
