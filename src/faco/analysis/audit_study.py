"""A study's detector benchmark and cleaning comparison (docs/audit.md), from its artifacts.

- Detection: every audit of a corrupted split (`audit` artifacts) reports, per detector and epoch,
  AUROC, average precision and precision at the corruption rate with bootstrap intervals
  (`faco.analysis.detection`, computed by the audit stage with `analyze.bootstrap` and `analyze.seed`).
- Cleaning: at each audited ratio, the held-out score of the corrupted model against the models
  retrained without the detector's flagged rows, without random rows and without the corrupted rows
  (`faco.analysis.cleaning`); with several seeds each item's value is its mean over the seeds.

The headline benchmark is `heldout` where evaluated (the training distribution), else the first one.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from faco import artifact_kinds, artifacts
from faco.analysis import cleaning, detection
from faco.evaluation.suite import suite


class AuditAnalysis(BaseModel):
    """What the report shows of the audits: the detector table, the cleaning comparison, their sentences."""

    model_config = ConfigDict(extra="forbid")

    detections: list[detection.Detection]
    cleaning: list[cleaning.Cleaning]
    findings: list[str]


def _items(path: Path, bench: str, metric: str) -> dict[str, float]:
    rows = (path / "samples" / f"{bench}.jsonl").read_text(encoding="utf-8").splitlines()
    return {str(r["doc_id"]): float(r["value"]) for r in map(json.loads, filter(str.strip, rows))
            if r.get("metric") == metric and r.get("value") is not None}


def _seed_mean(paths: Sequence[Path], bench: str, metric: str) -> dict[str, float]:
    per = [_items(p, bench, metric) for p in paths]
    common = set.intersection(*(set(p) for p in per)) if per else set()
    return {k: sum(p[k] for p in per) / len(per) for k in common}


def headline(evals: Sequence[Path]) -> tuple[str, str] | None:
    """(benchmark, primary metric) the comparison uses: heldout where evaluated, else the first one."""
    scores = json.loads((evals[0] / "scores.json").read_text()) if evals else {}
    names = [b for b in scores if b != "epochs"]
    if not names:
        return None
    bench = "heldout" if "heldout" in names else sorted(names)[0]
    spec = suite().get(bench)
    return bench, spec.metrics[0] if spec else "acc"


def _arms(evals: Sequence[Path], cleaned_evals: Sequence[Path]) -> dict[float, dict[str, list[Path]]]:
    """ratio -> arm -> its evaluations (one per seed); the corrupted arm is the grid model of the ratio."""
    by: dict[float, dict[str, list[Path]]] = defaultdict(lambda: defaultdict(list))
    for path in cleaned_evals:
        clean = artifacts.require(path, artifact_kinds.EVAL)["meta"]["clean"]
        by[float(clean["from_ratio"])][clean["arm"]].append(path)
    for path in evals:
        m = artifacts.read_manifest(path)["meta"]
        if "ratio" in m and not m.get("base") and "start_ratio" not in m and float(m["ratio"]) in by:
            by[float(m["ratio"])]["corrupted"].append(path)
    return by


def _dropped(paths: Sequence[Path]) -> int | None:
    if not paths:
        return None
    return int(artifacts.read_manifest(paths[0])["meta"]["clean"]["dropped"])


def build(audits: Sequence[Path], evals: Sequence[Path], cleaned_evals: Sequence[Path], n_boot: int,
          seed: int, detector: str | None) -> AuditAnalysis:
    """The detector table of every audit and the cleaning comparison of every audited ratio."""
    found: list[detection.Detection] = []
    for path in audits:
        artifacts.require(path, artifact_kinds.AUDIT)
        if (path / "detection.json").is_file():
            found += [detection.Detection.model_validate(d)
                      for d in json.loads((path / "detection.json").read_text())]
    compared = []
    head = headline(cleaned_evals)
    for ratio, arms in sorted(_arms(evals, cleaned_evals).items()):
        if head is None or detector is None or set(arms) != set(cleaning.ARMS):
            continue
        bench, metric = head
        items = {a: _seed_mean(arms[a], bench, metric) for a in cleaning.ARMS}
        compared.append(cleaning.compare(items, {a: d for a in cleaning.ARMS if (d := _dropped(
            arms[a] if a != "corrupted" else [])) is not None}, n_boot, seed, ratio, detector, bench, metric))
    return AuditAnalysis(detections=found, cleaning=compared, findings=sentences(found, compared))


def sentences(found: Sequence[detection.Detection], compared: Sequence[cleaning.Cleaning]) -> list[str]:
    """One sentence on the best detector at each ratio, and one per cleaning comparison."""
    out = []
    for kind, ratio in sorted({(d.kind or "", d.ratio) for d in found if d.ratio is not None}):
        text = detection.sentence([d for d in found if d.ratio == ratio and (d.kind or "") == kind])
        if text:
            out.append(text)
    return out + [cleaning.sentence(c) for c in compared]


def _detector_row(d: detection.Detection) -> list[str]:
    ratio = f"CR {100 * (d.ratio or 0):g}%" + (f" {d.kind}" if d.kind else "")
    return [ratio, d.detector, "end" if d.epoch is None else str(d.epoch), _m(d.auroc), _m(d.average_precision),
            _m(d.precision_at_k), f"{d.corrupted} / {d.n}"]


def _cleaning_row(c: cleaning.Cleaning) -> list[str]:
    arms = [f"{x.score:.3f} {_ci(x.ci)}" + (f" (−{x.dropped})" if x.dropped is not None else "") for x in c.arms]
    rec = ["–" if r.fraction is None else f"{100 * r.fraction:.0f} % {_ci(r.ci, pct=True)}" for r in c.recovered]
    return [f"CR {100 * c.ratio:g}%", f"{c.benchmark} {c.metric}", *arms, f"{c.gain:+.3f} {_ci(c.gain_ci)}", *rec]


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head), *("| " + " | ".join(r) + " |" for r in rows)]


def markdown(a: AuditAnalysis) -> list[str]:
    """The report's section: the sentence on the best detector and the detector table (per epoch and at the
    end), then the cleaning sentences and table."""
    lines = ["## Detectors of corrupted samples", "", *(f"- {s}" for s in sentences(a.detections, [])), ""]
    lines += _table(["ratio", "detector", "epoch", "AUROC", "average precision", "precision at the rate",
                     "corrupted / n"], [_detector_row(d) for d in sorted(a.detections, key=_order)])
    if a.cleaning:
        lines += ["", "## Does cleaning work?", "", *(f"- {cleaning.sentence(c)}" for c in a.cleaning), ""]
        lines += _table(["ratio", "benchmark", *cleaning.ARMS, "oracle gain", "detector recovers",
                         "random recovers"], [_cleaning_row(c) for c in a.cleaning])
    return [*lines, ""]


def _order(d: detection.Detection) -> tuple[str, float, bool, int]:
    """Kind, ratio, then the epochs in order and the end last."""
    return d.kind or "", d.ratio or 0.0, d.epoch is None, d.epoch or 0


def _ci(ci: Sequence[float | None], pct: bool = False) -> str:
    if ci[0] is None or ci[1] is None:
        return "[–]"
    return f"[{100 * ci[0]:.0f}, {100 * ci[1]:.0f}]" if pct else f"[{ci[0]:.2f}, {ci[1]:.2f}]"


def _m(m: detection.Metric) -> str:
    return "–" if m.value is None else f"{m.value:.2f} {_ci(m.ci)}"


def to_json(a: AuditAnalysis) -> dict[str, Any]:
    return a.model_dump(mode="json")
