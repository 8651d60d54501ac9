"""A study's audits and cleaned models, read for the analysis (docs/audit.md).

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

from faco import artifact_kinds, artifacts
from faco.analysis import cleaning
from faco.analysis.schema import Cleaning, Detection
from faco.evaluation.suite import suite


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


def _detector(cleaned_evals: Sequence[Path]) -> str | None:
    """The detector the `detector` arm removed by (its evaluation's meta.clean)."""
    for path in cleaned_evals:
        clean = artifacts.read_manifest(path)["meta"]["clean"]
        if clean.get("arm") == "detector" and clean.get("detector"):
            return str(clean["detector"])
    return None


def detections(audits: Sequence[Path]) -> list[Detection]:
    """Every audit's detector benchmark (its `detection.json`, labels known)."""
    found: list[Detection] = []
    for path in audits:
        artifacts.require(path, artifact_kinds.AUDIT)
        if (path / "detection.json").is_file():
            found += [Detection.model_validate(d) for d in json.loads((path / "detection.json").read_text())]
    return found


def comparisons(evals: Sequence[Path], cleaned_evals: Sequence[Path], n_boot: int, seed: int) -> list[Cleaning]:
    """The cleaning comparison of every ratio with all four arms evaluated."""
    compared = []
    head, detector = headline(cleaned_evals), _detector(cleaned_evals)
    for ratio, arms in sorted(_arms(evals, cleaned_evals).items()):
        if head is None or detector is None or set(arms) != set(cleaning.ARMS):
            continue
        bench, metric = head
        items = {a: _seed_mean(arms[a], bench, metric) for a in cleaning.ARMS}
        compared.append(cleaning.compare(items, {a: d for a in cleaning.ARMS if (d := _dropped(
            arms[a] if a != "corrupted" else [])) is not None}, n_boot, seed, ratio, detector, bench, metric))
    return compared
