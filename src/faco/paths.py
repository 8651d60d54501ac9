"""Where faco finds its data mirror and caches."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
TASKS_DIR = PACKAGE_DIR / "tasks"
PROMPTS_DIR = PACKAGE_DIR / "prompts"


def repo_root() -> Path | None:
    """The source checkout this package was installed from (editable installs), if any."""
    root = PACKAGE_DIR.parents[1]
    return root if (root / "pyproject.toml").is_file() else None


def data_dir(configured: str | Path | None = None) -> Path:
    """The offline data mirror: config value, else $FACO_DATA_DIR, else ./data, else the checkout's data/."""
    candidates: list[Path] = []
    if configured:
        candidates.append(Path(configured))
    elif os.environ.get("FACO_DATA_DIR"):
        candidates.append(Path(os.environ["FACO_DATA_DIR"]))
    else:
        candidates.append(Path.cwd() / "data")
        root = repo_root()
        if root is not None:
            candidates.append(root / "data")
    for cand in candidates:
        if cand.is_dir():
            return cand.resolve()
    return candidates[0].resolve()


def cache_root() -> Path:
    """Where faco's cache is ($FACO_CACHE_DIR, else $XDG_CACHE_HOME/faco), made or not."""
    return Path(os.environ.get("FACO_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "faco"
    ))


def cache_dir() -> Path:
    """faco's cache for prepared models and other derived, reusable files (made if missing)."""
    path = cache_root()
    path.mkdir(parents=True, exist_ok=True)
    return path
