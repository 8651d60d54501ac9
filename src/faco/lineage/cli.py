"""`faco lineage show|verify`: exit 0 only when the whole chain is intact, else VerificationError (5)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from faco.errors import VerificationError
from faco.lineage.render import failure, render_tree, summary, to_dict
from faco.lineage.verify import trace

app = typer.Typer(
    help="Walk and verify artifact lineage (manifest chains), locally or in S3.", no_args_is_help=True
)

Target = Annotated[str, typer.Argument(help="artifact directory or s3://bucket/prefix")]
Search = Annotated[list[Path] | None, typer.Option("--search", help="extra directory to search for moved parents")]
Root = Annotated[Path | None, typer.Option(
    "--root", help="the tree parents must lie in (default: the directory the chain's relative paths span)")]
Outside = Annotated[bool, typer.Option(
    "--allow-outside", help="follow recorded URIs and searches outside the verified tree")]


def show(target: str, as_json: bool = False, search: Sequence[Path] = (), console: Console | None = None,
         root: Path | None = None, allow_outside: bool = False) -> int:
    """Print the chain of `target` as a tree (or JSON); raise VerificationError if anything is wrong."""
    node = trace(target, search, root, allow_outside)
    out = console or Console()
    if as_json:
        out.print_json(json.dumps(to_dict(node)))
    else:
        out.print(render_tree(node))
    bad = failure(node)
    if bad:
        raise VerificationError(bad)
    return 0


def verify(target: str, search: Sequence[Path] = (), console: Console | None = None,
           root: Path | None = None, allow_outside: bool = False) -> int:
    """Verify the chain of `target`: print `lineage ok: …` and return 0, or raise VerificationError."""
    node = trace(target, search, root, allow_outside)
    bad = failure(node)
    if bad:
        raise VerificationError(bad)
    (console or Console()).print(f"[green]lineage ok:[/] {escape(summary(node))}")
    return 0


@app.command("show")
def show_cmd(
    target: Target,
    as_json: Annotated[bool, typer.Option("--json", help="JSON for audits instead of a tree")] = False,
    search: Search = None,
    root: Root = None,
    allow_outside: Outside = False,
) -> None:
    """Print an artifact's chain back to the raw inputs, with every check (exit 5 if anything is wrong)."""
    show(target, as_json, search or [], root=root, allow_outside=allow_outside)


@app.command("verify")
def verify_cmd(target: Target, search: Search = None, root: Root = None, allow_outside: Outside = False) -> None:
    """Re-hash an artifact's whole chain; exit 5 naming the first problem, 0 only when intact."""
    verify(target, search or [], root=root, allow_outside=allow_outside)
