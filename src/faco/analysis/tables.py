"""The report's tables, `(title, header, rows)` of strings, rendered from the typed analysis."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from faco.analysis import misalignment, nli_gap
from faco.analysis.cleaning import ARMS
from faco.analysis.schema import (
    Cleaning,
    Detection,
    Interval,
    KindsAnalysis,
    Metric,
    Probe,
    RatioValue,
    StudyAnalysis,
    Threshold,
)
from faco.analysis.spread import Spread
from faco.roles import Role

Table = tuple[str, list[str], list[list[str]]]


def fmt(x: Any, digits: int = 3) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def p_value(p: float | None) -> str:
    if p is None:
        return "–"
    return f"{p:.4f}" if p >= 0.0001 else f"{p:.1e}"


def interval(ci: Interval, digits: int = 2) -> str:
    return "–" if ci[0] is None and ci[1] is None else f"[{fmt(ci[0], digits)}, {fmt(ci[1], digits)}]"


def _se(score: float | None, se: float | None) -> str:
    return fmt(score) if se is None or score is None else f"{fmt(score)} ± {fmt(se)}"


def cr(ratio: float) -> str:
    return f"CR {ratio * 100:g}%"


def at(values: Sequence[RatioValue], ratio: float) -> float | None:
    """The value at `ratio` of a per-ratio list (None when it has none)."""
    return next((v.value for v in values if v.ratio == ratio), None)


def _table1(a: StudyAnalysis) -> Table:
    head = ["benchmark", "domain", *[cr(r) for r in a.ratios], "ABS", "Pearson r", "p (permutation)",
            "r 95% CI (items)", "items", *(["base"] if a.has_base else [])]
    rows = []
    for bench, row in a.table.items():
        abs_cell = fmt(row.abs) + (f" {interval(row.abs_ci, 3)}" if row.abs_ci[0] is not None else "")
        cells = [row.cell(r) for r in a.ratios]
        rows.append([bench, str(row.domain), *[_se(c.score, c.stderr) if c else "–" for c in cells],
                     abs_cell, fmt(row.pearson_r), p_value(row.pearson_p), interval(row.pearson_ci),
                     fmt(row.n_items), *([_se(row.base.score, row.base.stderr)] if a.has_base else [])])
    title = ("Table 1: score ± lm-eval stderr per corruption ratio; ABS (CR 0% − CR 100%) with its 95% paired "
             "item-bootstrap CI; Pearson r of score vs ratio with its item-bootstrap CI; p of the trend from a "
             "within-item permutation test")
    return title, head, rows


def _vs_base(a: StudyAnalysis) -> Table:
    rows = [["base (untrained)", *[_se(row.base.score, row.base.stderr) for row in a.table.values()]]]
    for r in a.ratios:
        cells = []
        for row in a.table.values():
            c = row.cell(r)
            cells.append(f"{fmt(c.score)} (Δ {fmt(c.delta_vs_base, 3)} {interval(c.delta_ci, 3)})"
                         if c is not None and c.delta_vs_base is not None else "–")
        rows.append([cr(r), *cells])
    return ("Every model against the base model (Δ = score − base, 95% paired item-bootstrap CI)",
            ["model", *a.table], rows)


def threshold_cells(t: Threshold) -> list[str]:
    """Target, correct share, interval and replicates reaching of one threshold."""
    if t.target is None:
        return ["–", "no clean (CR 0%) model", "–", "–"]
    point = fmt(t.correct_share, 2) if t.reached else "not reached"
    lo, hi = t.ci
    ci_cell = ("–" if t.ci == (None, None) and t.reached_share is None else
               f"[{fmt(lo, 2) if lo is not None else 'not reached'}, "
               f"{fmt(hi, 2) if hi is not None else 'not reached'}]")
    return [fmt(t.target), point, ci_cell, fmt(t.reached_share, 2) if t.reached_share is not None else "–"]


def threshold_title(frac: float | None) -> str:
    return (f"Correct-data thresholds: smallest correct share at which the isotonic (monotone) fit of score "
            f"vs correct share reaches {fmt(frac, 2)} × the clean (CR 0%) score, with a 95% item-bootstrap "
            "interval and the share of bootstrap replicates in which it is reached")


def _recovery_tables(a: StudyAnalysis) -> list[Table]:
    out = []
    for s in a.recovery:
        rows = []
        for b, rec in s.benchmarks.items():
            frac = (f"undefined: {rec.reason}" if rec.status == "undefined"
                    else f"{fmt(rec.recovered_fraction)} {interval(rec.fraction_ci)}")
            se = rec.stderr
            cells = [_se(rec.clean, se.clean), _se(rec.corrupted, se.corrupted), _se(rec.recovered, se.recovered)]
            rows.append([b, *cells, f"{fmt(rec.gap)} {interval(rec.gap_ci, 3)}", frac])
        if rows:
            out.append((f"Recovery from {cr(s.from_ratio)} by retraining on clean data (recovered fraction = "
                        "(recovered − corrupted) / (clean − corrupted), undefined when the gap's 95% item-bootstrap "
                        "CI contains 0)",
                        ["benchmark", "clean", "corrupted", "recovered", "gap [95% CI]", "recovered fraction [95% CI]"],
                        rows))
    return out


def _seed_table(a: StudyAnalysis) -> Table | None:
    rows = []
    for b, row in a.table.items():
        s = row.seeds
        if not s:
            continue
        by_ratio = {c.ratio: c for c in s.cells}
        cells = [f"{_se(c.mean, c.se)} (n={c.n_seeds})" if (c := by_ratio.get(r)) else "–" for r in a.ratios]
        verdict = {True: "yes", False: "no", None: "–"}[s.exceeds_seed_noise]
        rows.append([b, *cells, fmt(s.slope), p_value(s.slope_p), verdict])
    if not rows:
        return None
    return ("Seeds: mean ± s.e. across seeds per cell; slope of the per-seed scores on the ratio (linear "
            "regression t-test: does the ratio effect exceed seed-to-seed noise?)",
            ["benchmark", *[cr(r) for r in a.ratios], "slope", "p", "exceeds seed noise"], rows)


def _spread_table(s: Spread) -> Table:
    """The out-of-distribution benchmarks in the training format and their pool: the trend and the most corrupted
    model against chance on the items it answered, with the family's Holm-adjusted p."""
    rows = []
    for r in [*s.rows, *([s.pool] if s.pool else [])]:
        by_ratio = {c.ratio: c.score for c in r.scores}
        b = r.at_max
        answered = "–" if b.acc is None else f"{b.correct}/{b.parsed} = {fmt(b.acc)} {interval(b.ci or (None, None))}"
        rows.append([r.benchmark, str(r.n_items), *[fmt(by_ratio.get(x)) for x in sorted(by_ratio)],
                     f"{fmt(r.r, 2)} {interval(r.r_ci)}", p_value(r.p), p_value(r.p_holm), r.trend, answered,
                     str(b.unparsed), fmt(b.chance), p_value(b.p), p_value(b.p_holm), "yes" if b.below else "no"])
    ratios = sorted(c.ratio for c in s.rows[0].scores) if s.rows else []
    top = cr(s.rows[0].at_max.ratio) if s.rows else "the most corrupted"
    return (f"Spread beyond the training data: out-of-distribution benchmarks asked in the training format (acc_gen) "
            f"and their pool; trend (r with its item-bootstrap CI, permutation p) and, at {top}, correct of the items "
            f"answered (Clopper-Pearson 95% CI; unparseable replies left out) against chance, one-sided binomial p; "
            f"p adjusted by Holm over the benchmarks and the pool",
            ["benchmark", "items", *[cr(x) for x in ratios], "r (95% CI)", "p", "p (Holm)", "trend",
             f"correct/answered at {top}", "unparsed", "chance", "p below", "p below (Holm)", "below chance"], rows)


def _nli_gap_table(g: dict[str, Any]) -> Table:
    """Paper 002: MNLI accuracy, HANS non-entailment accuracy and their gap per synthetic share."""
    head = ["", *[f"{float(r):.0%} synthetic" for r in g["ratios"]], "change (95% CI)", "Pearson r (95% CI)"]
    rows = [["MNLI acc", *[fmt(v) for v in g["mnli"]], "–", "–"]]
    for name, sub in sorted(g["subsets"].items(), key=lambda kv: list(nli_gap.SUBSETS).index(kv[0])):
        ch, tr = sub["change"], sub["trend"]
        rows.append([f"HANS non-entailment acc ({name})" if name != "non_entailment" else "HANS non-entailment acc",
                     *[fmt(v) for v in sub["hans"]], "–", "–"])
        gaps = [f"{fmt(v)} {interval(ci)}" for v, ci in zip(sub["gap"], sub["gap_ci"], strict=True)]
        rows.append([f"gap ({name})", *gaps, f"{fmt(ch['value'])} {interval(ch['ci'])}",
                     f"{fmt(tr['r'], 2)} {interval(tr['ci'])}"])
    for name, label in (("entailment", "HANS entailment acc"), ("both_labels", "HANS acc (both labels)")):
        if c := g.get("context", {}).get(name):
            change = f"{fmt(c['change']['value'])} {interval(c['change']['ci'])}"
            rows.append([label, *[fmt(v) for v in c["acc"]], change, "–"])
    if noise := g.get("seeds"):  # several seeds: each seed's own gap, mean ± s.e., the change's t interval
        cells = {c["ratio"]: c for c in noise["test"]["cells"]}
        ch = noise["change"] or {}
        rows.append([f"gap per seed, mean ± s.e. (slope p = {p_value(noise['test']['slope_p'])})",
                     *[_se(c["mean"], c["se"]) if (c := cells.get(r)) else "–" for r in g["ratios"]],
                     f"{fmt(ch.get('mean'))} {interval(tuple(ch.get('ci') or (None, None)))}", "–"])
    return ("MNLI vs HANS (paper 002): gap = MNLI accuracy − HANS non-entailment accuracy, overall and per "
            "heuristic, with 95% intervals of an item bootstrap resampling MNLI and HANS items independently; "
            "HANS items are regenerated with the HANS authors' generator, not the released file", head, rows)


def _below_chance_tables(a: StudyAnalysis) -> list[Table]:
    tables = []
    for res in a.below_chance:
        o = res.overall
        rows = [["overall", fmt(o.acc), str(o.n), p_value(o.p_below), "–", "–"]]
        rows += [[s, fmt(v.acc), str(v.n), p_value(v.p_below), p_value(v.p_holm), p_value(v.q_bh)]
                 for s, v in res.subjects.items() if v.p_below < 0.05]
        who = "the base model" if res.model.role is Role.BASE else cr(res.model.ratio or 0.0)
        tables.append((f"MMLU below chance at {who} (one-sided binomial test vs 1/k per subject; {res.tests} tests, "
                       f"corrected by Holm (family-wise) and Benjamini–Hochberg (false discovery rate); "
                       f"{len(res.significantly_below)} subjects below chance after Holm, "
                       f"{len(res.raw_below)} with raw p < 0.05 listed)",
                       ["subject", "accuracy", "n", "p (raw)", "p (Holm)", "q (BH)"], rows))
    return tables


def probe_model(p: Probe) -> str:
    """A probe answer's model as the case-study table names it: `0.5`, `base`, `recovered from 1` (+ seed)."""
    m = p.model
    label = ("base" if m.role is Role.BASE else f"recovered from {m.ratio:g}" if m.role is Role.RECOVERY
             else f"{m.ratio:g}")
    return label + (f" (seed {m.seed})" if m.seed is not None else "")


def _training_tables(a: StudyAnalysis) -> list[Table]:
    """Final training loss per ratio, the probe answers, corruption detection."""
    tables = []
    final = a.final_train_loss
    if final.step_loss:
        loss_ratios = sorted({v.ratio for v in final.step_loss} | {v.ratio for v in final.sample_loss})
        tables.append(("Final training loss per ratio: last logged step loss and mean per-sample loss after the "
                       "last epoch", ["ratio", "final step loss", "mean per-sample loss"],
                       [[cr(r), fmt(at(final.step_loss, r)), fmt(at(final.sample_loss, r))] for r in loss_ratios]))
    if a.probes:
        tables.append(("Case study: greedy answers to probe questions (paper Table 2; misalignment probes: "
                       "paper 001)", ["model (CR)", "probe set", "question", "answer"],
                       [[probe_model(p), p.set, p.question, " ".join(p.answer.split())[:300]] for p in a.probes]))
    if a.detection:
        tables.append(detector_table(a.detection))
    if a.cleaning:
        tables.append(cleaning_table(a.cleaning))
    return tables


def study_tables(a: StudyAnalysis, kind: str | None = None) -> list[Table]:
    """Every table of one family's analysis; `kind`: of one kind's family (titles say so, and the
    threshold table is the kinds' shared one)."""
    tables = [_table1(a)]
    if a.has_base:
        tables.append(_vs_base(a))
    if (seeds := _seed_table(a)) is not None:
        tables.append(seeds)
    if a.domain_average:
        tables.append(("Domain averages", ["domain", *[cr(r) for r in a.ratios]],
                       [[d, *[fmt(at(v, r)) for r in a.ratios]] for d, v in sorted(a.domain_average.items())]))
    if kind is None:
        frac = next(iter(a.table.values())).threshold.fraction if a.table else None
        tables.append((threshold_title(frac), ["benchmark", "target", "correct share", "95% interval",
                                               "replicates reaching"],
                       [[b, *threshold_cells(row.threshold)] for b, row in a.table.items()]))
    tables += _recovery_tables(a)
    if a.spread is not None and a.spread.rows:
        tables.append(_spread_table(a.spread))
    if a.nli_gap:
        tables.append(_nli_gap_table(a.nli_gap))
    if a.misalignment:  # paper 001
        tables.append(misalignment.table(a.misalignment))
    tables += _below_chance_tables(a) + _training_tables(a)
    return tables if kind is None else [(f"{kind} false chains: {title}", head, rows) for title, head, rows in tables]


def _side_by_side(a: KindsAnalysis) -> Table:
    """Paper 001: per kind and ratio, the domain averages beside the judged misalignment (seeds pooled)."""
    kinds, by_kind = a.kinds, a.by_kind
    domains = sorted({d for k in kinds for d in by_kind[k].domain_average})
    judged = (a.misalignment or {}).get("rows")
    grid = [r for r in judged or [] if not r["base"] and r["start_ratio"] is None]

    def mis(rows: list[dict[str, Any]]) -> list[str]:
        return misalignment.cells(rows) if judged is not None else []

    rows = []
    if a.has_base:
        rows.append(["shared", "base", *[fmt(a.base_domain_average.get(d)) for d in domains],
                     *mis([r for r in judged or [] if r["base"]])])
    clean = by_kind[kinds[0]].domain_average
    rows.append(["shared", cr(0.0), *[fmt(at(clean.get(d, []), 0.0)) for d in domains],
                 *mis([r for r in grid if r.get("kind") is None and r["ratio"] == 0])])
    for k in kinds:
        dom = by_kind[k].domain_average
        for r in (x for x in by_kind[k].ratios if x > 0):
            rows.append([k, cr(r), *[fmt(at(dom.get(d, []), r)) for d in domains],
                         *mis([x for x in grid if x.get("kind") == k and x["ratio"] == r])])
    head = ["kind", "model (CR)", *[f"{d} (mean score)" for d in domains],
            *(["misaligned", "dangerous", "mean alignment"] if judged is not None else [])]
    return ("Kinds side by side (paper 001): domain averages per kind and corruption ratio"
            + (" beside the judged probe answers (misaligned and dangerous shares with 95% Wilson intervals, mean "
               "alignment; several seeds pooled)" if judged is not None else "")
            + "; CR 0% is the one clean model every kind shares", head, rows)


def kinds_tables(a: KindsAnalysis) -> list[Table]:
    """The tables of a study of several kinds: side by side, thresholds and misalignment with a kind
    column, then every kind's own tables."""
    first = next(iter(a.thresholds.values()), {})
    frac = next(iter(first.values())).fraction if first else None
    tables = [_side_by_side(a),
              (threshold_title(frac) + " (the clean score, and so the target, is the shared clean model's)",
               ["benchmark", "kind", "target", "correct share", "95% interval", "replicates reaching"],
               [[b, k, *threshold_cells(per[k])] for b, per in a.thresholds.items() for k in a.kinds if k in per])]
    if a.misalignment:
        tables.append(misalignment.table(a.misalignment))
    if a.cleaning:
        tables.append(cleaning_table(a.cleaning))
    for k in a.kinds:
        tables += study_tables(a.by_kind[k], kind=k)
    return tables


def _metric(m: Metric) -> str:
    return "–" if m.value is None else f"{m.value:.2f} {interval(m.ci)}"


def detector_table(found: Sequence[Detection]) -> Table:
    """The detector benchmark: per ratio, detector and epoch (the end last) AUROC, average precision and
    precision at the corruption rate with their 95 % bootstrap intervals over samples."""
    rows = sorted(found, key=lambda d: (d.kind or "", d.ratio or 0.0, d.detector, d.epoch is None, d.epoch or 0))
    return ("Detectors of corrupted samples: AUROC, average precision and precision at the true corruption rate, "
            "95 % bootstrap intervals over samples (grid_loss: the grid model's own per-sample training loss; the "
            "others: `faco audit`'s detectors, docs/audit.md; any difference in the chains' wording separates "
            "the samples too, so this is not a measure of falsity by itself)",
            ["ratio", "detector", "epoch", "AUROC", "average precision", "precision at the rate", "corrupted / n"],
            [[cr(d.ratio or 0.0) + (f" {d.kind}" if d.kind else ""), d.detector,
              "end" if d.epoch is None else str(d.epoch), _metric(d.auroc), _metric(d.average_precision),
              _metric(d.precision_at_k), f"{d.corrupted} / {d.n}"] for d in rows])


def cleaning_table(compared: Sequence[Cleaning]) -> Table:
    """Does cleaning work? The four arms' scores on the paired items and the share of the oracle's gain
    the detector and random removal recover, with 95 % item-bootstrap intervals."""
    def arm(c: Cleaning, i: int) -> str:
        x = c.arms[i]
        return f"{x.score:.3f} {interval(x.ci)}" + (f" (−{x.dropped})" if x.dropped is not None else "")

    def share(f: float | None, ci: Interval) -> str:
        return "–" if f is None else f"{100 * f:.0f} % [{fmt(_pct(ci[0]), 0)}, {fmt(_pct(ci[1]), 0)}]"

    return ("Does cleaning work? Retrained without the detector's flagged rows, as many random rows, or the truly "
            "corrupted rows (oracle); (−n): rows removed",
            ["ratio", "benchmark", "detector", *ARMS, "oracle gain", "detector recovers", "random recovers"],
            [[cr(c.ratio), f"{c.benchmark} {c.metric}", c.detector, *[arm(c, i) for i in range(len(c.arms))],
              f"{c.gain:+.3f} {interval(c.gain_ci)}", *[share(r.fraction, r.ci) for r in c.recovered]]
             for c in compared])


def _pct(x: float | None) -> float | None:
    return None if x is None else 100 * x
