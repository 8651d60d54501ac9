"""The audit's summary: `summary.json` (what was audited, each detector, the most suspicious samples,
and with labels the detection numbers and the sentence on the best detector) and `summary.md`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from faco.analysis.detection import Detection, sentence
from faco.audit import ranking
from faco.audit.inputs import AuditData
from faco.audit.ranking import Scored

TOP = 10


def _excerpt(text: str, width: int = 90) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def summary(data: AuditData, scored: Sequence[Scored], found: Sequence[Detection], rank_by: str,
            meta: dict[str, Any]) -> dict[str, Any]:
    """The summary as JSON-ready data."""
    lead = ranking.lead(scored, rank_by)
    items = {it.id: it for it in data.items}
    top = sorted(lead.ranks, key=lambda k: (lead.ranks[k], k))[:TOP] if lead else []
    return {
        "data": meta.get("data"), "items": len(data.items), "epochs": len(data.epochs),
        "labelled": bool(found), "corrupted": found[0].corrupted if found else None,
        "detectors": [{"name": s.detector, "about": s.about, "scored": len(s.scores)} for s in scored],
        "rank_by": lead.detector if lead else None,
        "top": [{"id": k, "rank": lead.ranks[k], "score": lead.scores[k], "response": _excerpt(items[k].response),
                 **({"is_corrupted": items[k].is_corrupted} if items[k].is_corrupted is not None else {})}
                for k in top] if lead else [],
        "detection": [d.model_dump(mode="json") for d in found],
        "finding": sentence(found),
        "seconds": meta.get("seconds", {}),
    }


def _iv(ci: Sequence[float | None]) -> str:
    return "–" if ci[0] is None or ci[1] is None else f"[{ci[0]:.2f}, {ci[1]:.2f}]"


def _v(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f}"


def markdown(body: dict[str, Any]) -> str:
    """`summary.md`: the same, for people."""
    data = body["data"] or {}
    what = data.get("file") or f"split {data.get('split')}"
    lines = ["# Audit", "", f"{body['items']} samples of {what}, trained for {body['epochs']} epoch(s).", ""]
    if body["finding"]:
        lines += [f"**Finding.** {body['finding']}", ""]
    lines += ["| detector | scores | what it is (higher = more suspicious) |", "|---|---|---|"]
    lines += [f"| {d['name']} | {d['scored']} | {d['about']} |" for d in body["detectors"]]
    final = [d for d in body["detection"] if d["epoch"] is None]
    if final:
        lines += ["", f"Detection of the {body['corrupted']} corrupted samples (95 % bootstrap CIs over samples):", "",
                  "| detector | AUROC | average precision | precision at the corruption rate |", "|---|---|---|---|"]
        lines += [f"| {d['detector']} | {_v(d['auroc']['value'])} {_iv(d['auroc']['ci'])} | "
                  f"{_v(d['average_precision']['value'])} {_iv(d['average_precision']['ci'])} | "
                  f"{_v(d['precision_at_k']['value'])} {_iv(d['precision_at_k']['ci'])} |" for d in final]
    if body["top"]:
        lines += ["", f"Most suspicious samples by {body['rank_by']} (all of them, ranked: ranking.jsonl):", "",
                  "| rank | id | score | response |", "|---|---|---|---|"]
        lines += [f"| {t['rank']} | {t['id']} | {t['score']:.3f} | {t['response'].replace('|', '/')} |"
                  for t in body["top"]]
    if any(d["name"] == "confidence" for d in body["detectors"]):
        lines += ["", "![data map: variability against confidence](cartography.png)"]
    lines.append("")
    return "\n".join(lines)
