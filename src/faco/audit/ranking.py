"""Scores to ranks, and what a reviewer reads: `ranking.jsonl` (one row per sample: every detector's
score and rank, the text), the summary, and (labels known) each detector's detection numbers.

Rank 1 is the most suspicious sample of a detector; tied scores share the best rank among them
(`scipy.stats.rankdata(method="min")` of the negated scores); a sample a detector cannot score has
no rank there. Rows are sorted by `audit.rank_by` (then by `heldout_loss`, then `loss`, for the samples
it cannot score).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict
from scipy import stats as sps

from faco.analysis.detection import Detection, detection
from faco.audit.detectors import known
from faco.audit.inputs import DYNAMICS, AuditData

#: what orders the samples `audit.rank_by` cannot score (e.g. margins of rows without options)
FALLBACK = ("heldout_loss", "loss")


class Scored(BaseModel):
    """One detector's scores and ranks (id -> value), and what it is."""

    model_config = ConfigDict(extra="forbid")

    detector: str
    about: str
    scores: dict[str, float]
    ranks: dict[str, int]


def usable(data: AuditData, names: Sequence[str] | None) -> list[str]:
    """The detectors to run: `names`, or every known one whose inputs the data has."""
    from faco.audit.detectors import detectors

    chosen = list(names) if names is not None else list(detectors())
    return [n for n in chosen if all(data.has(need) for need in known(n).needs)]


def ranks(scores: dict[str, float]) -> dict[str, int]:
    """1 = highest score; ties share the best rank."""
    ids = list(scores)
    if not ids:
        return {}
    r = sps.rankdata(-np.asarray([scores[i] for i in ids], dtype=float), method="min")
    return {i: int(x) for i, x in zip(ids, r, strict=True)}


def score_all(data: AuditData, names: Sequence[str]) -> list[Scored]:
    """Every named detector's scores and ranks on `data`."""
    out = []
    for name in names:
        det = known(name)
        s = {k: float(v) for k, v in det.score(data).items()}
        out.append(Scored(detector=name, about=det.about, scores=s, ranks=ranks(s)))
    return out


def lead(scored: Sequence[Scored], rank_by: str) -> Scored | None:
    """The detector the ranking is sorted by: `rank_by`, else the first of FALLBACK that ran."""
    by = {s.detector: s for s in scored}
    return next((by[n] for n in (rank_by, *FALLBACK) if n in by), None)


def rows(data: AuditData, scored: Sequence[Scored], rank_by: str) -> list[dict[str, Any]]:
    """One row per item, most suspicious first by `rank_by` (then by FALLBACK, then id)."""
    by = {s.detector: s for s in scored}
    order = [by[n].ranks for n in (rank_by, *FALLBACK) if n in by]
    big = len(data.items) + 1

    def key(row: dict[str, Any]) -> tuple[int, ...]:
        return (*(r.get(row["id"], big) for r in order), 0)

    out = []
    for it in data.items:
        row: dict[str, Any] = {"id": it.id, "source": it.source}
        if it.is_corrupted is not None:
            row["is_corrupted"] = it.is_corrupted
        row["scores"] = {s.detector: s.scores.get(it.id) for s in scored}
        row["ranks"] = {s.detector: s.ranks.get(it.id) for s in scored}
        row.update(prompt=it.prompt, response=it.response)
        if it.choices:
            row.update(choices=it.choices, assigned=it.assigned)
        out.append(row)
    return sorted(out, key=lambda r: (key(r), r["id"]))


def detections(data: AuditData, names: Sequence[str], n_boot: int, seed: int,
               ratio: float | None = None, kind: str | None = None) -> list[Detection]:
    """Each detector's AUROC, AP and precision at the corruption rate after every epoch and at the end
    (labels known), on the samples it scores."""
    labels = {it.id: bool(it.is_corrupted) for it in data.items}
    views: list[tuple[int | None, AuditData]] = [(e, data.until(e)) for e in data.epochs[:-1]]
    views.append((None, data))
    out = []
    for name in names:
        for epoch, view in views:
            if epoch is not None and DYNAMICS not in known(name).needs:
                continue  # nothing changes between epochs
            s = known(name).score(view)
            ids = sorted(s)
            out.append(detection([s[i] for i in ids], [labels[i] for i in ids], n_boot, seed, name, ratio, epoch,
                                 kind))
    return out
