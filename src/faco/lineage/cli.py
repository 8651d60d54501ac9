"""`faco lineage show|verify`: exit 0 only when the whole chain is intact, else VerificationError (5).

A chain that is only self-consistent (every hash holds) could have been rewritten whole by whoever
can write the tree; `--expect SHA256` (the head manifest's hash, recorded elsewhere) or
`--public-key` (every manifest signed by a trusted key) anchor it, and `verify` says which held.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from faco.errors import UsageError, VerificationError
from faco.lineage import signing
from faco.lineage.render import failure, render_tree, summary, to_dict
from faco.lineage.verify import Node, Policy, trace

app = typer.Typer(
    help="Walk and verify artifact lineage (manifest chains), locally or in S3.", no_args_is_help=True
)

Target = Annotated[str, typer.Argument(help="artifact directory or s3://bucket/prefix")]
Search = Annotated[list[Path] | None, typer.Option("--search", help="extra directory to search for moved parents")]
Root = Annotated[Path | None, typer.Option(
    "--root", help="the tree parents must lie in (default: the directory the chain's relative paths span)")]
Outside = Annotated[bool, typer.Option(
    "--allow-outside", help="follow recorded URIs and searches outside the verified tree")]
Expect = Annotated[str | None, typer.Option(
    "--expect", help="the sha256 the target's manifest.json must have (an anchor recorded elsewhere)")]
PublicKey = Annotated[list[str] | None, typer.Option(
    "--public-key", help=f"trust this key (sha256:<fingerprint> or a PEM file; also ${signing.TRUST_ENV}): "
                         "every manifest must be signed by a trusted key")]
Legacy = Annotated[bool, typer.Option(
    "--allow-schema-1", help="accept schema-1 manifests (faco 0.1, no self-hash: anyone can rewrite them)")]
SHA256 = re.compile(r"[0-9a-f]{64}")


def policy(public_keys: Sequence[str] = (), allow_schema_1: bool = False) -> Policy:
    """The verification policy of the options (trusted keys also from FACO_PUBLIC_KEY)."""
    return Policy(frozenset(signing.trusted_keys(list(public_keys))), allow_schema_1)


def anchor_problem(node: Node, expect: str | None) -> str | None:
    """Why the target's manifest is not the expected one (UsageError for an expectation that is no sha256)."""
    if expect is None:
        return None
    want = expect.strip().lower().removeprefix("sha256:")
    if not SHA256.fullmatch(want):
        raise UsageError(f"--expect {expect!r}: not a sha256 (64 hex digits)")
    if node.manifest_sha256 != want:
        return (f"{node.uri}/manifest.json: manifest sha256 {node.manifest_sha256[:12]} differs from the "
                f"expected {want[:12]} (--expect): the head artifact is not the one recorded")
    return None


def assurance(node: Node, expect: str | None, rules: Policy) -> str:
    """What an intact chain is anchored by, said plainly."""
    held = ["anchored (manifest sha256 matches --expect)"] if expect else []
    if rules.trusted:
        held.append("signed (every manifest by a trusted key)")
    if held:
        return " and ".join(held)
    signers = {signing.signer(n.manifest) for n in node.walk()}
    if None not in signers:
        keys = ", ".join(sorted(str(k)[:19] + "…" for k in signers))
        return f"self-consistent and signed by {keys}, but no key was trusted (pass --public-key)"
    return ("self-consistent only: not anchored (--expect) or signed by a trusted key (--public-key); "
            "whoever can write the tree could have rewritten it whole")


def show(target: str, as_json: bool = False, search: Sequence[Path] = (), console: Console | None = None,
         root: Path | None = None, allow_outside: bool = False, rules: Policy = Policy(),
         expect: str | None = None) -> int:
    """Print the chain of `target` as a tree (or JSON); raise VerificationError if anything is wrong."""
    node = trace(target, search, root, allow_outside, rules)
    out = console or Console()
    if as_json:
        out.print_json(json.dumps(to_dict(node)))
    else:
        out.print(render_tree(node))
    bad = anchor_problem(node, expect)
    bad = f"lineage mismatch: {bad}" if bad else failure(node)
    if bad:
        raise VerificationError(bad)
    return 0


def verify(target: str, search: Sequence[Path] = (), console: Console | None = None,
           root: Path | None = None, allow_outside: bool = False, rules: Policy = Policy(),
           expect: str | None = None) -> int:
    """Verify the chain of `target`: print `lineage ok: …` (and what anchors it) and return 0, or raise
    VerificationError."""
    node = trace(target, search, root, allow_outside, rules)
    bad = anchor_problem(node, expect)
    bad = f"lineage mismatch: {bad}" if bad else failure(node)
    if bad:
        raise VerificationError(bad)
    (console or Console()).print(
        f"[green]lineage ok:[/] {escape(summary(node))}; manifest sha256 {node.manifest_sha256}; "
        f"{escape(assurance(node, expect, rules))}", soft_wrap=True)
    return 0


@app.command("show")
def show_cmd(
    target: Target,
    as_json: Annotated[bool, typer.Option("--json", help="JSON for audits instead of a tree")] = False,
    search: Search = None,
    root: Root = None,
    allow_outside: Outside = False,
    expect: Expect = None,
    public_key: PublicKey = None,
    allow_schema_1: Legacy = False,
) -> None:
    """Print an artifact's chain back to the raw inputs, with every check (exit 5 if anything is wrong)."""
    show(target, as_json, search or [], root=root, allow_outside=allow_outside,
         rules=policy(public_key or [], allow_schema_1), expect=expect)


@app.command("verify")
def verify_cmd(target: Target, search: Search = None, root: Root = None, allow_outside: Outside = False,
               expect: Expect = None, public_key: PublicKey = None, allow_schema_1: Legacy = False) -> None:
    """Re-hash an artifact's whole chain; exit 5 naming the first problem, 0 only when intact."""
    verify(target, search or [], root=root, allow_outside=allow_outside,
           rules=policy(public_key or [], allow_schema_1), expect=expect)
