"""HANS scoring for a three-way MNLI prompt: True -> entailment, Neither/False -> non-entailment."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

HEURISTICS = ("lexical_overlap", "subsequence", "constituent")


def process_results(doc: dict[str, Any], results: Sequence[tuple[float, bool]]) -> dict[str, Any]:
    """Per document: correctness for `acc` and for each subset the document is in; None for the
    subsets it is not in (so per-item samples name every item's subsets)."""
    lls = [ll for ll, _ in results]
    says_entailment = max(range(len(lls)), key=lls.__getitem__) == 0
    entailment = int(doc["label"]) == 0  # HANS: 0 entailment, 1 non-entailment
    correct = float(says_entailment == entailment)
    heuristic = str(doc.get("heuristic", ""))
    out: dict[str, Any] = {
        "acc": correct,
        "acc_entailment": correct if entailment else None,
        "acc_non_entailment": None if entailment else correct,
    }
    for h in HEURISTICS:
        out[f"acc_non_entailment_{h}"] = correct if not entailment and heuristic == h else None
    return out


def subset_mean(items: Sequence[float | None]) -> float | None:
    """Mean correctness over the documents in the subset (not None); None when the subset is empty."""
    values = [c for c in items if c is not None]
    return sum(values) / len(values) if values else None
