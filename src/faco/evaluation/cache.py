"""The evaluation cache: JSON results under `cache_dir()/eval`, keyed by what determines them.

A key names the weights by the sha256 of their files' contents (never by manifest fields, so
swapped weights are a miss), plus the task, its settings and the versions of everything that
renders or scores it. An entry holds its key, its value and a digest binding the two (an HMAC
under a secret derived from the signing key when `FACO_SIGNING_KEY(_FILE)` is set, else a
sha256), checked on every read: an entry that is not JSON, is filed under another key, or whose
digest does not hold is a miss, logged, and is evaluated afresh, never a score. Without a signing
key, whoever can write the cache folder can still forge a self-consistent entry (docs/evaluation.md).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from faco import artifacts
from faco.errors import FacoError
from faco.paths import cache_dir
from faco.progress import log


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


def _digest(key: dict[str, Any], value: Any, secret: bytes | None) -> str:
    body = json.dumps({"key": key, "value": value}, sort_keys=True).encode()
    return hmac.new(secret, body, "sha256").hexdigest() if secret else hashlib.sha256(body).hexdigest()


class Cache:
    """Results by CacheKey under cache_dir()/eval (a no-op when disabled)."""

    def __init__(self, enabled: bool) -> None:
        from faco.lineage import signing

        self.enabled = enabled
        self.root = cache_dir() / "eval"
        self.secret = signing.cache_secret() if enabled else None
        self.binding = "hmac-sha256" if self.secret else "sha256"
        if enabled and self.root.exists() and not self.root.is_dir():
            raise FacoError(f"{self.root}: not a folder; the evaluation cache needs one there (remove the file)")

    def _path(self, key: CacheKey) -> Path:
        digest = key.digest()
        return self.root / digest[:2] / f"{digest}.json"

    def _problem(self, entry: Any, key: CacheKey) -> str | None:
        """Why `entry` is not a result for `key` (None when it is)."""
        if not isinstance(entry, dict) or set(entry) != {"key", "value", "binding", "digest"}:
            return "not a faco cache entry"
        if entry["key"] != asdict(key):
            return "filed under another key"
        if entry["binding"] != self.binding:
            return f"bound by {entry['binding']!r}, {self.binding!r} required"
        if not hmac.compare_digest(str(entry["digest"]), _digest(entry["key"], entry["value"], self.secret)):
            return "digest mismatch (edited or forged)"
        return None

    def get(self, key: CacheKey) -> Any:
        """The cached value of `key`, or None (a miss): a missing, unreadable or forged entry."""
        path = self._path(key)
        if not self.enabled or not os.path.lexists(path):
            return None
        if path.is_dir() or path.is_symlink():
            raise FacoError(f"{path}: a {'folder' if path.is_dir() else 'symbolic link'} where an evaluation "
                            "cache entry belongs (remove it)")
        problem: str | None
        try:
            entry = json.loads(path.read_text())
        except (OSError, ValueError, UnicodeDecodeError) as e:
            entry, problem = None, f"unreadable ({type(e).__name__})"
        else:
            problem = self._problem(entry, key)
        if problem:
            log(f"evaluation cache: ignoring {path}: {problem}; evaluating afresh")
            return None
        return entry["value"]

    def put(self, key: CacheKey, value: Any) -> None:
        if not self.enabled:
            return
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        record = json.loads(json.dumps(value, sort_keys=True))  # as it will read back
        entry = {"key": asdict(key), "value": record, "binding": self.binding,
                 "digest": _digest(asdict(key), record, self.secret)}
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(entry, sort_keys=True))
        tmp.replace(path)
