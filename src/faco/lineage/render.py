"""Showing a traced chain: a rich tree for people, JSON for audits, one line for `verify`."""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from rich.tree import Tree

from faco.lineage.signing import signer
from faco.lineage.verify import Node


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
        "schema_version": m.get("schema_version", 1),
        "signed_by": signer(m),
        "dvc": node.dvc,
        "files": len(m.get("files", {})),
        "raw_inputs": (m.get("meta") or {}).get("raw_inputs", []),
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
        if signer(m):
            details.append(f"signed by {signer(m)}")
        run_id = (m.get("meta") or {}).get("kfp_run_id")
        if run_id:
            details.append(f"kfp run {run_id}")
        if n.dvc:
            details.append(f"dvc.lock {n.dvc['stage']} md5 {n.dvc['md5']}")
        tree.add(f"[dim]{escape(' · '.join(details))}[/]")
        for entry in (m.get("meta") or {}).get("raw_inputs", []) or []:
            if not isinstance(entry, dict):
                continue
            where = entry.get("path") or f"hub {entry.get('hub')}@{entry.get('revision')}"
            tree.add(f"[dim]raw {escape(str(entry.get('source')))}/{escape(str(entry.get('split')))}: "
                     f"{escape(str(where))}[/]")
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


def summary(node: Node) -> str:
    """`TARGET: N artifacts, M files verified` (+ raw inputs re-hashed)."""
    nodes = list(node.walk())
    files = sum(len(n.manifest.get("files", {})) for n in nodes)
    raws = sum(n.raw_checked for n in nodes)
    return f"{node.uri}: {len(nodes)} artifacts, {files} files" + (f", {raws} raw inputs" if raws else "") + " verified"


def failure(node: Node) -> str | None:
    """The one-line verdict on a broken chain: the first problem and how many more; None when intact."""
    problems = node.all_problems()
    if not problems:
        return None
    more = f" (+{len(problems) - 1} more problems)" if len(problems) > 1 else ""
    return f"lineage mismatch: {problems[0]}{more}"
