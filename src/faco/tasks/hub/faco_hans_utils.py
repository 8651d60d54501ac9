"""HANS scoring for a three-way MNLI prompt: True -> entailment, Neither/False -> non-entailment."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

HEURISTICS = ("lexical_overlap", "subsequence", "constituent")


def process_results(doc: dict[str, Any], results: Sequence[tuple[float, bool]]) -> dict[str, Any]:
    """Per document: overall correctness, and (in-subset?, correct) pairs for the subset metrics."""
    lls = [ll for ll, _ in results]
    says_entailment = max(range(len(lls)), key=lls.__getitem__) == 0
    entailment = int(doc["label"]) == 0  # HANS: 0 entailment, 1 non-entailment
    correct = float(says_entailment == entailment)
    heuristic = str(doc.get("heuristic", ""))
    out: dict[str, Any] = {
        "acc": correct,
        "acc_entailment": (entailment, correct),
        "acc_non_entailment": (not entailment, correct),
    }
    for h in HEURISTICS:
        out[f"acc_non_entailment_{h}"] = (not entailment and heuristic == h, correct)
    return out


def subset_mean(items: Sequence[tuple[bool, float]]) -> float | None:
    """Mean correctness over the documents in the subset; None when the subset is empty."""
    values = [c for inside, c in items if inside]
    return sum(values) / len(values) if values else None
