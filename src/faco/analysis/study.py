"""The analysis of a study: one split family's Table 1, statistics and findings (`family`), and
several kinds of false chain side by side (`compare_kinds`, paper 001)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from faco.analysis import chance, findings, nli_gap, seed_noise, spread, stats, threshold
from faco.analysis.inputs import Evals, TrainingLog, items, lookup
from faco.analysis.losses import Losses, losses
from faco.analysis.schema import (
    BenchmarkRow,
    Cleaning,
    Detection,
    EpochValue,
    KindFindings,
    KindsAnalysis,
    Probe,
    RatioEpochs,
    RatioValue,
    RecoverySet,
    StudyAnalysis,
)
from faco.analysis.table import benchmark_row
from faco.config import AnalyzeConfig
from faco.errors import ArtifactError
from faco.evaluation.suite import suite
from faco.registry import TRAINED

#: significance level of every decision the analysis states in words
ALPHA = 0.05
#: groups whose subtasks get rows of their own (heldout: one per training source)
PER_SUBTASK = ("heldout",)


@dataclass
class Family:
    """The analysis of one split family (a single-kind study, or one kind) and what its figures need."""

    analysis: StudyAnalysis
    evals: Evals
    losses: Losses
    mmlu_k: int


def benchmarks(ev: Evals) -> list[str]:
    """Every benchmark a grid model was scored on, and the subtasks of the `PER_SUBTASK` groups."""
    evs = [e for es in ev.grid.values() for e in es]
    return sorted({b for e in evs for b in e.benchmarks}
                  | {f"{g}/{sub}" for e in evs for g in PER_SUBTASK
                     for sub in (e.benchmarks.get(g) or {}).get("subtasks") or {}})


def domain_average(scores: Mapping[str, Mapping[float, float]], ratios: Sequence[float]
                   ) -> dict[str, list[RatioValue]]:
    """Per domain and ratio, the unweighted mean score of the suite's benchmarks
    (`scores`: benchmark -> ratio -> score)."""
    known = suite()
    out: dict[str, list[RatioValue]] = {}
    for x in ratios:
        per = {b: s[x] for b, s in scores.items() if x in s and b in known}
        for dom, val in stats.domain_means(per, {b: known[b].domain for b in per}).items():
            out.setdefault(dom, []).append(RatioValue(ratio=x, value=val))
    return out


def epoch_average(ev: Evals) -> list[RatioEpochs]:
    """Per grid ratio and epoch, the mean benchmark score (Fig. 5), where per-epoch scores exist (first seed)."""
    out = []
    for ratio, evs in ev.grid.items():
        epochs = [EpochValue(epoch=int(epoch), value=sum(vals) / len(vals))
                  for epoch, per in (evs[0].scores.get("epochs") or {}).items()
                  if (vals := [v for v in per.values() if v is not None])]
        if epochs:
            out.append(RatioEpochs(ratio=ratio, epochs=epochs))
    return out


def _seed_gaps(ev: Evals) -> dict[float, dict[int, float]]:
    """Per ratio and seed, the MNLI accuracy minus the HANS non-entailment accuracy of that seed's model."""
    out: dict[float, dict[int, float]] = {}
    for r in ev.ratios:
        for e in ev.grid[r]:
            mnli = lookup(e, "mnli").get("score")
            hans = ((lookup(e, "hans").get("metrics") or {}).get(nli_gap.SUBSETS["non_entailment"]) or {}).get("value")
            if e.seed is not None and mnli is not None and hans is not None:
                out.setdefault(r, {})[e.seed] = mnli - hans
    return out


def _nli_gap(ev: Evals, cfg: AnalyzeConfig) -> dict[str, Any]:
    """Paper 002: the MNLI vs HANS gap per ratio from the items; with several seeds, its trend against their noise."""
    def per_ratio(bench: str, metric: str) -> list[dict[str, float]]:
        return [items(ev.grid[x], bench, metric) for x in ev.ratios]

    out = nli_gap.from_items(ev.ratios, per_ratio("mnli", "acc"),
                             {s: per_ratio("hans", m) for s, m in nli_gap.SUBSETS.items()}, cfg.bootstrap, cfg.seed,
                             {s: per_ratio("hans", m) for s, m in nli_gap.CONTEXT.items()})
    if len(ev.seeds) >= 2:
        noise = seed_noise.seed_noise("MNLI-HANS gap", _seed_gaps(ev), ALPHA)
        out["seeds"] = noise.model_dump(mode="json")
        out["sentence"] += " " + noise.sentence
    return out


def _spread(ev: Evals, rows: Mapping[str, BenchmarkRow], cfg: AnalyzeConfig) -> spread.Spread | None:
    """The out-of-distribution benchmarks asked in the training format (`<name>@trained`), per benchmark and pooled
    (`faco.analysis.spread`); None when the study asked none."""
    asked = [b for b, row in rows.items() if b.endswith(TRAINED) and "/" not in b and row.chance is not None]
    if not asked:
        return None
    top = max(ev.ratios)
    standard = [o for b in asked if (o := b.removesuffix(TRAINED)) in rows]  # the same questions, lm-eval's way
    return spread.from_items(
        ev.ratios, {b: [items(ev.grid[x], b, "acc_gen") for x in ev.ratios] for b in asked},
        {b: [(e.items(b, "acc_gen"), e.items(b, "unparsed")) for e in ev.grid[top]] for b in asked},
        {b: float(rows[b].chance or 0.0) for b in asked}, {o: rows[o].trend or "not tested" for o in standard},
        cfg.bootstrap, cfg.seed, ALPHA)


def family(cfg: AnalyzeConfig, ev: Evals, logs: Sequence[TrainingLog], probes: list[Probe]) -> Family:
    """Table 1, statistics, findings (and paper 002's gap) of one family's evaluations and training logs."""
    if not ev.grid:
        raise ArtifactError("analyze: no corruption-grid evaluation (meta.ratio) among the artifacts given")
    benches = benchmarks(ev)
    rows = {b: row for b in benches if (row := benchmark_row(ev, b, cfg, ALPHA)) is not None}
    trained = losses(logs, cfg, ALPHA)
    ood = _spread(ev, rows, cfg)
    mmlu_k = suite()["mmlu"].choices or 4
    analysis = StudyAnalysis(
        ratios=ev.ratios, seeds=ev.seeds, has_base=ev.base is not None, alpha=ALPHA, bootstrap=cfg.bootstrap,
        table=rows, domain_average=domain_average({b: r.scores() for b, r in rows.items()}, ev.ratios),
        recovery=[RecoverySet(from_ratio=fr, benchmarks={b: rec for b, row in rows.items()
                                                         if (rec := row.recovery_from(fr)) is not None})
                  for fr in sorted(ev.recovery)],
        below_chance=chance.subjects(ev, mmlu_k, ALPHA), final_train_loss=trained.final,
        detection=trained.detection, epoch_average=epoch_average(ev), probes=probes,
        findings=findings.build(rows, trained.final, len(ev.ratios), ALPHA, ood, found=trained.detection),
        spread=ood,
        nli_gap=_nli_gap(ev, cfg) if "mnli" in benches and "hans" in benches else None)
    return Family(analysis, ev, trained, mmlu_k)


def compare_kinds(families: Mapping[str, StudyAnalysis], misalignment: dict[str, Any] | None) -> KindsAnalysis:
    """The analysis of several kinds: each kind's family, thresholds side by side, one misalignment table."""
    first = next(iter(families.values()))
    heads = findings.headline(first.table)
    known = suite()
    base = {b: row.base.score for b, row in first.table.items() if b in known and row.base.score is not None}
    thresholds = {b: {k: f.table[b].threshold for k, f in families.items() if b in f.table} for b in first.table}
    return KindsAnalysis(
        kinds=list(families), ratios=sorted({r for f in families.values() for r in f.ratios}), seeds=first.seeds,
        has_base=first.has_base, alpha=ALPHA, bootstrap=first.bootstrap,
        base_domain_average=stats.domain_means(base, {b: known[b].domain for b in base}),
        by_kind=dict(families), thresholds=thresholds, headline=heads,
        findings=KindFindings(headline=heads, thresholds=[threshold.compare(b, thresholds[b]) for b in heads
                                                          if b in thresholds]),
        misalignment=misalignment)


def with_audits(result: StudyAnalysis | KindsAnalysis, found: Sequence[Detection], compared: Sequence[Cleaning]
                ) -> StudyAnalysis | KindsAnalysis:
    """The analysis with the audits' detector benchmark (`found`) beside the grid's loss detector and the
    cleaning comparison (`compared`, `train.clean`); the Findings' detector and cleaning sentences follow."""
    def one(a: StudyAnalysis, mine: Sequence[Detection], cleaned: Sequence[Cleaning]) -> StudyAnalysis:
        every = [*a.detection, *mine]
        kept = [f for f in a.findings.findings if f.id not in ("detection", "cleaning")]
        return a.model_copy(update={"detection": every, "cleaning": list(cleaned), "findings": a.findings.model_copy(
            update={"findings": kept + findings.detector_findings(every, cleaned)})})

    if isinstance(result, StudyAnalysis):
        return one(result, found, compared)
    by_kind = {k: one(a, [d for d in found if d.kind in (k, None)], []) for k, a in result.by_kind.items()}
    return result.model_copy(update={"by_kind": by_kind, "cleaning": list(compared)})
