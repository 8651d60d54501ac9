"""Where lineage reads artifacts from: one `Store` protocol, for local directories and for S3.

Both present artifacts as local paths (S3 prefixes are mirrored lazily into a temporary root, so
`root/<key>` stands for `s3://bucket/<key>`); the tracer only asks a store whether a path holds
an artifact, how to show it, what a recorded URI points to, and where to search for moved ones.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlparse

from faco import storage
from faco.artifacts import MANIFEST

#: How deep below a search root a sibling artifact may sit (e.g. root/models/cr_0.25).
SEARCH_DEPTH = 3


class Store(Protocol):
    """Artifacts addressed as local paths, whatever holds them."""

    def ensure(self, path: Path) -> bool:
        """Make `path` fully available if it exists; True when it holds a manifest."""

    def display(self, path: Path) -> str:
        """How to name `path` to the user (a relative path, an absolute one, or an s3:// URI)."""

    def from_uri(self, uri: str) -> Path | None:
        """The path a recorded parent URI stands for in this store (None: not one of its URIs)."""

    def legacy_candidates(self, recorded: str, child: Path) -> list[Path]:
        """Where a schema-1 parent `path` (relative to the run's cwd) may point."""

    def search_roots(self, child: Path) -> list[Path]:
        """Directories to search for a parent by manifest hash."""

    def artifact_dirs(self, root: Path) -> Iterator[Path]:
        """Artifact directories at most SEARCH_DEPTH below `root`."""


class LocalStore:
    """Artifact directories on a local (or mounted) filesystem."""

    def __init__(self, search: Sequence[Path] = ()) -> None:
        self.extra_roots = [Path(p).resolve() for p in search]

    def ensure(self, path: Path) -> bool:
        return (path / MANIFEST).is_file()

    def display(self, path: Path) -> str:
        try:
            return path.resolve().relative_to(Path.cwd().resolve()).as_posix() or "."
        except ValueError:
            return str(path)

    def from_uri(self, uri: str) -> Path | None:
        parsed = urlparse(uri)
        if parsed.scheme != "file":
            return None
        return Path(unquote(parsed.path))

    def legacy_candidates(self, recorded: str, child: Path) -> list[Path]:
        rec = Path(recorded)
        if rec.is_absolute():
            return [rec]
        return [Path.cwd() / rec, *(anc / rec for anc in child.parents)]

    def search_roots(self, child: Path) -> list[Path]:
        roots = [child.parent, child.parent.parent, *self.extra_roots]
        return [r for r in roots if r != Path(r.anchor)]

    def artifact_dirs(self, root: Path) -> Iterator[Path]:
        base = len(root.parts)
        for dirpath, dirnames, filenames in os.walk(root):
            here = Path(dirpath)
            deeper = len(here.parts) - base < SEARCH_DEPTH
            dirnames[:] = [d for d in dirnames if deeper and not d.startswith(".")]
            if MANIFEST in filenames:
                yield here


class S3Store:
    """Artifacts under an S3 bucket, mirrored lazily into `root` (root/<key> <-> s3://bucket/<key>)."""

    def __init__(self, bucket: str, root: Path) -> None:
        self.bucket = bucket
        self.root = root
        self.s3 = storage.client()
        self.fetched: set[Path] = set()

    def _inside(self, path: Path) -> bool:
        return path == self.root or self.root in path.parents

    def uri(self, path: Path) -> storage.S3Uri:
        return storage.S3Uri(self.bucket, path.relative_to(self.root).as_posix().strip("."))

    def ensure(self, path: Path) -> bool:
        if not self._inside(path):
            return False
        if path not in self.fetched:
            self.fetched.add(path)
            if storage.exists(self.s3, self.uri(path).child(MANIFEST)):
                storage.download_prefix(self.s3, self.uri(path), path)
        return (path / MANIFEST).is_file()

    def display(self, path: Path) -> str:
        return str(self.uri(path)) if self._inside(path) else str(path)

    def from_uri(self, uri: str) -> Path | None:
        if not storage.is_s3(uri):
            return None
        parsed = storage.S3Uri.parse(uri)
        return self.root / parsed.key if parsed.bucket == self.bucket else None

    def legacy_candidates(self, recorded: str, child: Path) -> list[Path]:
        rec = Path(recorded)
        if rec.is_absolute():
            return []
        return [anc / rec for anc in child.parents if self._inside(anc)]

    def search_roots(self, child: Path) -> list[Path]:
        return [r for r in (child.parent, child.parent.parent) if self._inside(r)]

    def artifact_dirs(self, root: Path) -> Iterator[Path]:
        """Artifact prefixes under `root`; only their manifest is fetched here."""
        prefix = self.uri(root)
        for key in storage.list_keys(self.s3, prefix):
            rel = key[len(prefix.key):].strip("/") if prefix.key else key
            parts = rel.split("/")
            if parts[-1] == MANIFEST and len(parts) - 1 <= SEARCH_DEPTH:
                path = root.joinpath(*parts[:-1])
                if path not in self.fetched:
                    (path / MANIFEST).parent.mkdir(parents=True, exist_ok=True)
                    self.s3.download_file(self.bucket, key, str(path / MANIFEST))
                yield path
