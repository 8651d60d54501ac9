"""Artifact lineage: walk a manifest chain back to the sources and verify every byte on the way.

`trace(target)` follows each manifest's `parents` (by recorded path, else by searching nearby
artifact directories for the recorded manifest sha256), re-hashes every file, and returns a tree
of `Node`s with every problem found. A target may be a local directory or an `s3://` prefix; S3
artifacts (and their parents, found the same way under the bucket) are downloaded with boto3 into
a temporary directory first. `show` and `verify` print the result; `app` is the `faco lineage`
command group.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer
import yaml
from rich.console import Console
from rich.markup import escape
from rich.tree import Tree

from faco import storage
from faco.artifacts import MANIFEST, sha256_file
from faco.errors import ArtifactError, FacoError

#: How deep below a search root a sibling artifact may sit (e.g. root/models/cr_025).
SEARCH_DEPTH = 3


@dataclass
class Node:
    """One artifact in the chain: where it is, what its manifest says, what is wrong with it."""

    uri: str
    manifest_sha256: str
    manifest: dict[str, Any]
    problems: list[str] = field(default_factory=list)
    parents: list[ParentLink] = field(default_factory=list)
    dvc: dict[str, str] | None = None

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


class _Store:
    """Local artifact directories."""

    def __init__(self, search: Sequence[Path] = ()) -> None:
        self.extra_roots = [Path(p) for p in search]

    def ensure(self, path: Path) -> bool:
        """Make `path` fully available if it exists; True when it holds a manifest."""
        return (path / MANIFEST).is_file()

    def display(self, path: Path) -> str:
        try:
            return path.resolve().relative_to(Path.cwd().resolve()).as_posix() or "."
        except ValueError:
            return str(path)

    def candidates(self, recorded: str, child: Path) -> list[Path]:
        """Where a recorded parent path may point: as given, from cwd, from each ancestor of the child."""
        rec = Path(recorded)
        if rec.is_absolute():
            return [rec]
        return [Path.cwd() / rec, *(anc / rec for anc in child.parents)]

    def search_roots(self, child: Path) -> list[Path]:
        roots = [child.parent, child.parent.parent, *self.extra_roots]
        return [r for r in roots if r != Path(r.anchor)]

    def artifact_dirs(self, root: Path) -> Iterator[Path]:
        """Artifact directories at most SEARCH_DEPTH below `root` (hidden dirs skipped)."""
        base = len(root.parts)
        for dirpath, dirnames, filenames in os.walk(root):
            here = Path(dirpath)
            deeper = len(here.parts) - base < SEARCH_DEPTH
            dirnames[:] = [d for d in dirnames if deeper and not d.startswith(".")]
            if MANIFEST in filenames:
                yield here


class _S3Store(_Store):
    """Artifacts under an S3 bucket, mirrored lazily into `root` (root/<key> <-> s3://bucket/<key>)."""

    def __init__(self, bucket: str, root: Path, search: Sequence[Path] = ()) -> None:
        super().__init__(search)
        self.bucket = bucket
        self.root = root
        self.s3 = storage.client()
        self.fetched: set[Path] = set()

    def uri(self, path: Path) -> storage.S3Uri:
        return storage.S3Uri(self.bucket, path.relative_to(self.root).as_posix().strip("."))

    def ensure(self, path: Path) -> bool:
        if path != self.root and self.root not in path.parents:
            return False
        if path not in self.fetched:
            self.fetched.add(path)
            if storage.exists(self.s3, self.uri(path).child(MANIFEST)):
                storage.download_prefix(self.s3, self.uri(path), path)
        return (path / MANIFEST).is_file()

    def display(self, path: Path) -> str:
        return str(self.uri(path))

    def candidates(self, recorded: str, child: Path) -> list[Path]:
        rec = Path(recorded)
        if rec.is_absolute():
            return []
        return [anc / rec for anc in child.parents if anc == self.root or self.root in anc.parents]

    def search_roots(self, child: Path) -> list[Path]:
        return [r for r in (child.parent, child.parent.parent) if r == self.root or self.root in r.parents]

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


class _Tracer:
    def __init__(self, store: _Store, dvc_outs: dict[str, dict[str, str]]) -> None:
        self.store = store
        self.dvc_outs = dvc_outs
        self.nodes: dict[Path, Node] = {}
        self.hash_cache: dict[Path, str] = {}

    def manifest_sha(self, path: Path) -> str:
        path = path.resolve()
        if path not in self.hash_cache:
            self.hash_cache[path] = sha256_file(path / MANIFEST)
        return self.hash_cache[path]

    def node(self, path: Path) -> Node:
        path = path.resolve()
        if path in self.nodes:
            return self.nodes[path]
        shown = self.store.display(path)
        node = Node(uri=shown, manifest_sha256=self.manifest_sha(path), manifest={})
        self.nodes[path] = node
        node.dvc = self._dvc_entry(shown)
        try:
            node.manifest = json.loads((path / MANIFEST).read_text())
            if not isinstance(node.manifest, dict):
                raise ValueError("not a JSON object")
        except (ValueError, UnicodeDecodeError) as e:
            node.problems.append(f"{shown}/{MANIFEST}: unreadable manifest ({e})")
            return node
        node.problems.extend(self._check_files(path, shown, node.manifest.get("files", {})))
        for rec in node.manifest.get("parents", []):
            node.parents.append(self._link(path, shown, rec))
        return node

    def _check_files(self, path: Path, shown: str, files: dict[str, str]) -> list[str]:
        problems: list[str] = []
        for name, digest in sorted(files.items()):
            f = path / name
            if not f.is_file():
                problems.append(f"{shown}/{name}: missing")
                continue
            actual = sha256_file(f)
            if actual != digest:
                problems.append(
                    f"{shown}/{name}: sha256 mismatch (recorded {digest[:12]}, found {actual[:12]})"
                )
        present = {
            p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file() and p.name != MANIFEST
        }
        problems.extend(f"{shown}/{name}: not in manifest" for name in sorted(present - files.keys()))
        return problems

    def _link(self, child: Path, shown: str, rec: dict[str, Any]) -> ParentLink:
        recorded, want = str(rec.get("path", "")), str(rec.get("manifest_sha256", ""))
        kind = str(rec.get("kind"))
        existing: list[Path] = []
        for cand in dict.fromkeys(c.resolve() for c in self.store.candidates(recorded, child)):
            if cand != child and self.store.ensure(cand):
                if self.manifest_sha(cand) == want:
                    return self._linked(kind, recorded, want, cand, "recorded path", shown)
                existing.append(cand)
        for root in self.store.search_roots(child):
            for cand in self.store.artifact_dirs(root):
                if cand.resolve() != child and self.manifest_sha(cand) == want and self.store.ensure(cand):
                    return self._linked(kind, recorded, want, cand, "manifest sha256", shown)
        if existing:
            got = existing[0]
            problem = (
                f"{self.store.display(got)}/{MANIFEST}: manifest sha256 {self.manifest_sha(got)[:12]} "
                f"differs from {want[:12]} recorded by {shown}"
            )
            return ParentLink(kind, recorded, want, self.node(got), "recorded path", problem)
        problem = (
            f"{shown}: parent {kind!r} not found (recorded path {recorded}, manifest sha256 {want[:12]})"
        )
        return ParentLink(kind, recorded, want, None, "", problem)

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
    data = yaml.safe_load(lock.read_text()) or {}
    outs: dict[str, dict[str, str]] = {}
    for stage, body in (data.get("stages") or {}).items():
        for out in (body or {}).get("outs", []) or []:
            digest = out.get("md5") or out.get("etag") or out.get("checksum")
            if "path" in out and digest:
                outs[str(out["path"]).rstrip("/")] = {"stage": str(stage), "md5": str(digest)}
    return outs


def trace(target: str, search: Sequence[Path] = ()) -> Node:
    """Resolve and verify the whole chain of `target` (a directory or an s3:// prefix)."""
    dvc_outs = dvc_outputs(Path.cwd() / "dvc.lock")
    if storage.is_s3(target):
        uri = storage.S3Uri.parse(target)
        with tempfile.TemporaryDirectory(prefix="faco-lineage-") as tmp:
            root = Path(tmp).resolve()
            store = _S3Store(uri.bucket, root, search)
            path = root / uri.key
            if not store.ensure(path):
                raise ArtifactError(f"{target}: not a faco artifact (no {MANIFEST})")
            return _Tracer(store, dvc_outs).node(path)
    path = Path(target)
    if not (path / MANIFEST).is_file():
        raise ArtifactError(f"{target}: not a faco artifact (no {MANIFEST})")
    return _Tracer(_Store(search), dvc_outs).node(path)


def to_dict(node: Node) -> dict[str, Any]:
    """JSON-able audit record of a chain (shared ancestors are repeated in full)."""
    m = node.manifest
    return {
        "uri": node.uri,
        "kind": node.kind,
        "manifest_sha256": node.manifest_sha256,
        "created": m.get("created"),
        "code_version": m.get("code_version"),
        "config_hash": m.get("config_hash"),
        "kfp_run_id": (m.get("meta") or {}).get("kfp_run_id"),
        "dvc": node.dvc,
        "files": len(m.get("files", {})),
        "ok": not node.problems and all(not link.problem for link in node.parents),
        "problems": node.problems,
        "parents": [
            {
                "kind": link.kind,
                "recorded_path": link.recorded_path,
                "recorded_manifest_sha256": link.recorded_sha256,
                "found_by": link.found_by or None,
                "problem": link.problem,
                "artifact": to_dict(link.node) if link.node is not None else None,
            }
            for link in node.parents
        ],
    }


def render_tree(node: Node) -> Tree:
    """A rich tree of the chain, target at the root, problems in red."""
    shown: set[int] = set()

    def label(n: Node) -> str:
        mark = "[red]✗[/]" if n.problems else "[green]✓[/]"
        return f"{mark} [bold]{escape(n.kind)}[/] {escape(n.uri)}  [dim]manifest {n.manifest_sha256[:12]}[/]"

    def add(tree: Tree, n: Node) -> None:
        if id(n) in shown:
            tree.add("[dim](shown above)[/]")
            return
        shown.add(id(n))
        m = n.manifest
        details = [f"created {m.get('created')}", f"code {m.get('code_version')}",
                   f"config {str(m.get('config_hash'))[:12]}", f"{len(m.get('files', {}))} files"]
        run_id = (m.get("meta") or {}).get("kfp_run_id")
        if run_id:
            details.append(f"kfp run {run_id}")
        if n.dvc:
            details.append(f"dvc.lock {n.dvc['stage']} md5 {n.dvc['md5']}")
        tree.add(f"[dim]{escape(' · '.join(details))}[/]")
        for problem in n.problems:
            tree.add(f"[red]{escape(problem)}[/]")
        for link in n.parents:
            if link.node is None:
                tree.add(f"[red]✗ {escape(link.kind)}: {escape(str(link.problem))}[/]")
                continue
            branch = tree.add(label(link.node))
            if link.problem:
                branch.add(f"[red]{escape(link.problem)}[/]")
            add(branch, link.node)

    root = Tree(label(node))
    add(root, node)
    return root


def show(
    target: str, as_json: bool = False, search: Sequence[Path] = (), console: Console | None = None
) -> int:
    """Print the chain of `target` as a tree (or JSON); 0 when intact, 1 otherwise."""
    node = trace(target, search)
    out = console or Console()
    if as_json:
        out.print_json(json.dumps(to_dict(node)))
    else:
        out.print(render_tree(node))
    return 0 if not node.all_problems() else 1


def verify(target: str, search: Sequence[Path] = (), console: Console | None = None) -> int:
    """Verify the chain of `target`; prints the first mismatch (and a count) and returns 1, else 0."""
    node = trace(target, search)
    out = console or Console()
    problems = node.all_problems()
    if problems:
        more = f" (+{len(problems) - 1} more problems)" if len(problems) > 1 else ""
        out.print(f"[red]lineage mismatch:[/] {escape(problems[0])}{escape(more)}")
        return 1
    nodes = list(node.walk())
    files = sum(len(n.manifest.get("files", {})) for n in nodes)
    out.print(f"[green]lineage ok:[/] {escape(node.uri)}: {len(nodes)} artifacts, {files} files verified")
    return 0


app = typer.Typer(
    help="Walk and verify artifact lineage (manifest chains), locally or in S3.", no_args_is_help=True
)

_SEARCH = typer.Option([], "--search", help="extra directory to search for parents by manifest hash")


@app.command("show")
def show_cmd(
    target: str = typer.Argument(..., help="artifact directory or s3://bucket/prefix"),
    as_json: bool = typer.Option(False, "--json", help="JSON for audits instead of a tree"),
    search: list[Path] = _SEARCH,
) -> None:
    """Print an artifact's chain back to the sources, with every check."""
    raise typer.Exit(_guarded(lambda: show(target, as_json, search)))


@app.command("verify")
def verify_cmd(
    target: str = typer.Argument(..., help="artifact directory or s3://bucket/prefix"),
    search: list[Path] = _SEARCH,
) -> None:
    """Re-hash an artifact's whole chain; exit 1 naming the first mismatch."""
    raise typer.Exit(_guarded(lambda: verify(target, search)))


def _guarded(fn: Any) -> int:
    try:
        return int(fn())
    except FacoError as e:
        Console(stderr=True).print(f"[red]error:[/] {escape(str(e))}")
        return 2
