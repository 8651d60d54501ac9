"""Artifact lineage: walk a manifest chain back to the raw inputs and verify every byte on the way.

`verify` (chain walking and checks), `store` (local and S3 artifact stores), `raw` (raw inputs of
an ingest), `signing` (Ed25519 signatures on manifests, trusted keys), `render` (tree, JSON,
one-line verdict) and `cli` (the `faco lineage` commands, `app`).
"""

from faco.lineage.cli import app, show, verify
from faco.lineage.render import render_tree, to_dict
from faco.lineage.verify import Node, ParentLink, Policy, trace

__all__ = ["Node", "ParentLink", "Policy", "app", "render_tree", "show", "to_dict", "trace", "verify"]
