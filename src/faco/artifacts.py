"""Artifact directories: data files plus a `manifest.json` that makes lineage verifiable.

A manifest records the artifact kind, the sha256 of every file, the parents' manifest hashes,
the hash of the config section(s) that made it, and the code version. Outputs are written to a
temporary sibling directory and renamed into place only when complete, so a failed stage leaves
no half-written artifact.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from faco import __version__
from faco.errors import ArtifactError
from faco.paths import repo_root

MANIFEST = "manifest.json"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def code_version() -> str:
    """The package version, plus the git commit (and `-dirty`) when run from a checkout."""
    root = repo_root()
    if root is None or not (root / ".git").exists():
        return __version__
    try:
        rev = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
            capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "--", "src"],
            capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return __version__
    return f"{__version__}+g{rev}{'-dirty' if dirty else ''}"


def read_manifest(path: Path) -> dict[str, Any]:
    mf = path / MANIFEST
    if not mf.is_file():
        raise ArtifactError(f"{path}: not a faco artifact (no {MANIFEST})")
    return json.loads(mf.read_text())


def manifest_hash(path: Path) -> str:
    return sha256_file(path / MANIFEST)


def require(path: Path, kind: str) -> dict[str, Any]:
    """Read an input artifact's manifest and check its kind."""
    manifest = read_manifest(path)
    if manifest.get("kind") != kind:
        raise ArtifactError(f"{path}: expected a {kind!r} artifact, found {manifest.get('kind')!r}")
    return manifest


def _hash_tree(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): sha256_file(p)
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }


def write_manifest(
    path: Path, kind: str, parents: list[Path], config_hash: str, meta: dict[str, Any] | None = None
) -> dict[str, Any]:
    manifest = {
        "kind": kind,
        "schema_version": 1,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "code_version": code_version(),
        "config_hash": config_hash,
        "parents": [
            {"kind": read_manifest(p)["kind"], "path": str(p), "manifest_sha256": manifest_hash(p)}
            for p in parents
        ],
        "meta": meta or {},
        "files": _hash_tree(path),
    }
    (path / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def verify(path: Path) -> list[str]:
    """Re-hash an artifact's files; returns a list of problems (empty when intact)."""
    manifest = read_manifest(path)
    problems: list[str] = []
    actual = _hash_tree(path)
    for name, digest in manifest["files"].items():
        if name not in actual:
            problems.append(f"{path / name}: missing")
        elif actual[name] != digest:
            problems.append(f"{path / name}: sha256 mismatch")
    problems.extend(f"{path / name}: not in manifest" for name in actual.keys() - manifest["files"].keys())
    return problems


@contextmanager
def artifact_dir(
    out: Path, kind: str, parents: list[Path], config_hash: str, meta: dict[str, Any] | None = None
) -> Iterator[Path]:
    """Yield a temporary directory; on success write its manifest and move it to `out` atomically.

    `meta` may be mutated inside the block (e.g. to add counts); it is written at the end.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        yield tmp
        write_manifest(tmp, kind, parents, config_hash, meta)
        if out.exists():
            trash = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            out.rename(trash / "old")
            tmp.rename(out)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
