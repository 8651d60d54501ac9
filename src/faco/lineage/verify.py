"""Walk a manifest chain back to the raw inputs and verify every byte on the way.

`trace(target)` reads the target's manifest, checks its self-hash and re-hashes its files, then
resolves each parent: by the path recorded relative to the child (the method), else by the
recorded URI, else by searching nearby artifact directories for the recorded manifest sha256
(fallbacks for moved parents). Resolution stays inside the tree being verified (by default the
smallest directory holding the target and every relative parent path of its chain), so a copied
study is checked as the copy, never through the original; `allow_outside` lifts that. Every place
is resolved (symbolic links followed) before that check: a parent folder that is a link into
another tree is outside, and a link inside an artifact is a problem, never followed.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from faco import storage
from faco.artifacts import MANIFEST, file_problems, self_problem, sha256_file, shape_problem
from faco.errors import VerificationError
from faco.lineage import raw, signing
from faco.lineage.store import LocalStore, S3Store, Store


@dataclass
class Node:
    """One artifact in the chain: where it is, what its manifest says, what is wrong with it."""

    uri: str
    manifest_sha256: str
    manifest: dict[str, Any]
    problems: list[str] = field(default_factory=list)
    parents: list[ParentLink] = field(default_factory=list)
    dvc: dict[str, str] | None = None
    raw_checked: int = 0

    @property
    def kind(self) -> str:
        return str(self.manifest.get("kind", "?"))

    def walk(self) -> Iterator[Node]:
        """This node and every distinct ancestor, depth first, target first."""
        seen: set[int] = set()
        stack: list[Node] = [self]
        while stack:
            node = stack.pop()
            if id(node) in seen:
                continue
            seen.add(id(node))
            yield node
            stack.extend(link.node for link in reversed(node.parents) if link.node is not None)

    def all_problems(self) -> list[str]:
        """Every problem in the chain: a node's own files first, then its parent links, then upward."""
        out: list[str] = []
        for node in self.walk():
            out.extend(node.problems)
            out.extend(link.problem for link in node.parents if link.problem)
        return out


@dataclass
class ParentLink:
    """A parent entry of a manifest and the artifact it was resolved to (if any)."""

    kind: str
    recorded_path: str
    recorded_sha256: str
    node: Node | None
    found_by: str
    problem: str | None


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _real(path: Path) -> Path:
    """`path` with every symbolic link resolved: where its bytes really are."""
    return Path(os.path.realpath(path))


@dataclass(frozen=True)
class Policy:
    """What verification demands beyond self-consistency: signatures by `trusted` keys (fingerprints);
    `legacy`: accept schema-1 manifests, which carry no self-hash."""

    trusted: frozenset[str] = frozenset()
    legacy: bool = False


def _read(path: Path) -> dict[str, Any] | str:
    """The manifest of `path`, or what is wrong with it."""
    if (path / MANIFEST).is_symlink():
        return "a symbolic link"
    try:
        data = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return "not JSON"
    return shape_problem(data) or data


def chain_extent(store: Store, target: Path) -> Path:
    """The smallest directory holding `target` and every relative parent path of its chain (for a
    schema-1 parent, the first place its cwd-relative path holds an artifact)."""
    seen: set[Path] = set()
    todo = [target]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        manifest = _read(path) if store.ensure(path) else None
        for rec in manifest.get("parents", []) if isinstance(manifest, dict) else []:
            if not isinstance(rec, dict):
                continue
            rel = rec.get("relative_path")
            if isinstance(rel, str):
                todo.append(Path(os.path.normpath(path / rel)))
            else:  # schema 1: the first place the cwd-relative path holds an artifact
                legacy = [c for c in store.legacy_candidates(str(rec.get("path", "")), path) if store.ensure(c)]
                todo.extend(Path(os.path.normpath(c)) for c in legacy[:1])
    return Path(os.path.commonpath([str(p) for p in seen]))


class Tracer:
    """Builds the `Node` tree of one target; every artifact is read and hashed once."""

    def __init__(self, store: Store, dvc_outs: dict[str, dict[str, str]], root: Path, allow_outside: bool,
                 policy: Policy) -> None:
        self.store = store
        self.dvc_outs = dvc_outs
        self.root = root
        self.allow_outside = allow_outside
        self.policy = policy
        self.nodes: dict[Path, Node] = {}
        self.hash_cache: dict[Path, str] = {}

    def allowed(self, path: Path) -> bool:
        return self.allow_outside or _inside(path, self.root)

    def manifest_sha(self, path: Path) -> str:
        if path not in self.hash_cache:
            self.hash_cache[path] = sha256_file(path / MANIFEST)
        return self.hash_cache[path]

    def node(self, path: Path) -> Node:
        path = _real(path)
        if path in self.nodes:
            return self.nodes[path]
        shown = self.store.display(path)
        node = Node(uri=shown, manifest_sha256=self.manifest_sha(path), manifest={})
        self.nodes[path] = node
        node.dvc = self._dvc_entry(shown)
        manifest = _read(path)
        if isinstance(manifest, str):
            node.problems.append(f"{shown}/{MANIFEST}: unreadable manifest ({manifest})")
            return node
        node.manifest = manifest
        own = [self_problem(Path(shown), manifest, self.policy.legacy),
               signing.trust_problem(f"{shown}/{MANIFEST}", manifest, set(self.policy.trusted))]
        node.problems.extend(p for p in own if p)
        node.problems.extend(file_problems(path, manifest["files"], shown))
        raw_inputs = (manifest.get("meta") or {}).get("raw_inputs")
        for entry in raw_inputs if isinstance(raw_inputs, list) else []:
            if isinstance(entry, dict):
                node.raw_checked += raw.reachable(entry)
                found = raw.problem(entry, shown)
                if found:
                    node.problems.append(found)
        for rec in manifest.get("parents", []) or []:
            node.parents.append(self._link(path, shown, rec if isinstance(rec, dict) else {}))
        return node

    def _usable(self, cand: Path, child: Path, outside: list[Path]) -> bool:
        """Whether `cand` holds an artifact we may read (remembering those outside the tree); `cand`
        must be resolved (a link into another tree is outside)."""
        if cand == child or not self.store.ensure(cand):
            return False
        if not self.allowed(cand):
            outside.append(cand)
            return False
        return True

    def _link(self, child: Path, shown: str, rec: dict[str, Any]) -> ParentLink:
        kind, want = str(rec.get("kind")), str(rec.get("manifest_sha256", ""))
        rel, uri = rec.get("relative_path"), rec.get("uri")
        recorded = str(rel if rel is not None else rec.get("path", ""))
        outside: list[Path] = []
        if isinstance(rel, str):
            cand = _real(child / rel)
            if self._usable(cand, child, outside):  # the recorded place is authoritative when it holds one
                if self.manifest_sha(cand) == want:
                    return self._linked(kind, recorded, want, cand, "relative path", shown)
                return self._mismatch(kind, recorded, want, cand, shown)
        else:  # schema 1: a path relative to the producing run's cwd
            existing = [c for c in dict.fromkeys(_real(c) for c in self.store.legacy_candidates(recorded, child))
                        if self._usable(c, child, outside)]
            for cand in existing:
                if self.manifest_sha(cand) == want:
                    return self._linked(kind, recorded, want, cand, "recorded path", shown)
            if existing:
                return self._mismatch(kind, recorded, want, existing[0], shown)
        if isinstance(uri, str):
            cand_uri = self.store.from_uri(uri)
            cand_uri = None if cand_uri is None else _real(cand_uri)
            if cand_uri is not None and self._usable(cand_uri, child, outside) and self.manifest_sha(cand_uri) == want:
                return self._linked(kind, recorded, want, cand_uri, "uri", shown)
        for root in self.store.search_roots(child):
            for cand in self.store.artifact_dirs(root):
                cand = _real(cand)
                if self.manifest_sha(cand) == want and self._usable(cand, child, outside):
                    return self._linked(kind, recorded, want, cand, "manifest sha256", shown)
        hint = ""
        matching = [c for c in outside if self.manifest_sha(c) == want]
        if matching:
            hint = (f"; one is outside the verified tree {self.store.display(self.root)} at "
                    f"{self.store.display(matching[0])} (pass --allow-outside to use it)")
        problem = (f"{shown}: parent {kind!r} not found (recorded path {recorded}, "
                   f"manifest sha256 {want[:12]}){hint}")
        return ParentLink(kind, recorded, want, None, "", problem)

    def _mismatch(self, kind: str, recorded: str, want: str, path: Path, shown: str) -> ParentLink:
        problem = (f"{self.store.display(path)}/{MANIFEST}: manifest sha256 {self.manifest_sha(path)[:12]} "
                   f"differs from {want[:12]} recorded by {shown}")
        return ParentLink(kind, recorded, want, self.node(path), "relative path", problem)

    def _linked(self, kind: str, recorded: str, want: str, path: Path, how: str, shown: str) -> ParentLink:
        node = self.node(path)
        problem = None
        if node.manifest and node.kind != kind:
            problem = f"{node.uri}: kind {node.kind!r} differs from {kind!r} recorded by {shown}"
        return ParentLink(kind, recorded, want, node, how, problem)

    def _dvc_entry(self, shown: str) -> dict[str, str] | None:
        for out, entry in self.dvc_outs.items():
            if shown == out or shown.endswith("/" + out):
                return entry
        return None


def dvc_outputs(lock: Path) -> dict[str, dict[str, str]]:
    """Outputs listed in a dvc.lock: path -> {stage, md5}."""
    if not lock.is_file():
        return {}
    try:
        data = yaml.safe_load(lock.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError, RecursionError) as e:
        raise VerificationError(f"{lock}: not a DVC lock file ({type(e).__name__}); fix or move it") from None
    stages = (data.get("stages") or {}) if isinstance(data, dict) else None
    if not isinstance(stages, dict) or not all(isinstance(b, dict | None) for b in stages.values()):
        raise VerificationError(f"{lock}: not a DVC lock file ('stages' is not a mapping of stages); fix or move it")
    outs: dict[str, dict[str, str]] = {}
    for stage, body in stages.items():
        listed = (body or {}).get("outs", []) or []
        if not isinstance(listed, list) or not all(isinstance(out, dict) for out in listed):
            raise VerificationError(f"{lock}: not a DVC lock file (stage {stage!r}: 'outs' is not a list of "
                                    "outputs); fix or move it")
        for out in listed:
            digest = out.get("md5") or out.get("etag") or out.get("checksum")
            if "path" in out and digest:
                outs[str(out["path"]).rstrip("/")] = {"stage": str(stage), "md5": str(digest)}
    return outs


def _trace(store: Store, path: Path, target: str, root: Path | None, allow_outside: bool, policy: Policy) -> Node:
    if not store.ensure(path):
        raise VerificationError(f"{target}: not a faco artifact (no {MANIFEST})")
    # the extent is lexical, candidates are resolved: a parent folder linked into another tree lies outside
    tree = _real(root if root is not None else chain_extent(store, path))
    return Tracer(store, dvc_outputs(Path.cwd() / "dvc.lock"), tree, allow_outside, policy).node(path)


def trace(target: str, search: Sequence[Path] = (), root: Path | None = None, allow_outside: bool = False,
          policy: Policy = Policy()) -> Node:
    """Resolve and verify the whole chain of `target` (a directory or an s3:// prefix).

    `root` is the tree parents must lie in (default: the chain's own extent); `search` adds
    directories to look in for moved parents (they count as inside the tree); `policy` adds
    demands (trusted signers, schema-1 manifests allowed).
    """
    if storage.is_s3(target):
        uri = storage.S3Uri.parse(target)
        with tempfile.TemporaryDirectory(prefix="faco-lineage-") as tmp:
            mirror = Path(tmp).resolve()
            return _trace(S3Store(uri.bucket, mirror), mirror / uri.key, target, None, allow_outside, policy)
    path = Path(target).resolve()
    store = LocalStore(search)
    tree = Path(root).resolve() if root is not None else None
    if tree is None and search:
        tree = Path(os.path.commonpath([str(chain_extent(store, path)), *map(str, store.extra_roots)]))
    return _trace(store, path, target, tree, allow_outside, policy)
