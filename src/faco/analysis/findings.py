"""The report's Findings: one sentence per claim, generated from the analysis, true or false.

Every sentence states what the numbers say (falls / rises / no significant trend, below chance or
not, how much of the gap recovery closes, or that it is undefined) with its statistic; nothing is
asserted that the analysis did not compute. The headline benchmark is `heldout` (the training
distribution, asked in the training format) when present, else every benchmark.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from faco.analysis import cleaning, detection
from faco.analysis.schema import BenchmarkRow, ChanceTest, Cleaning, Detection, Finding, Findings, Interval, TrainLoss
from faco.analysis.spread import Spread
from faco.registry import TRAINED

HEADLINE = "heldout"
_VERB = {"falls": "falls", "rises": "rises", "no significant trend": "shows no significant trend"}


def _cr(ratio: float) -> str:
    return f"CR {float(ratio) * 100:g} %"


def _num(x: float | None, digits: int = 2, sign: bool = False) -> str:
    if x is None:
        return "–"
    return f"{x:+.{digits}f}" if sign else f"{x:.{digits}f}"


def _p(p: float | None) -> str:
    if p is None:
        return "–"
    return f"{p:.2g}" if p >= 0.001 else f"{p:.1e}"


def _ci(ci: Interval, digits: int = 2, sign: bool = False) -> str:
    return f"[{_num(ci[0], digits, sign)}, {_num(ci[1], digits, sign)}]"


def headline(table: Mapping[str, Any]) -> list[str]:
    """The benchmarks the findings are about: heldout when evaluated, else all (not subtask rows)."""
    return [HEADLINE] if HEADLINE in table else sorted(b for b in table if "/" not in b)


def _f1(bench: str, row: BenchmarkRow, n_models: int) -> Finding:
    scores = row.scores()
    lo, hi = min(scores), max(scores)
    span = f"{_num(scores[lo])} at {_cr(lo)} to {_num(scores[hi])} at {_cr(hi)}"
    if row.base.score is not None:
        span += f"; base model {_num(row.base.score)}"
    stat: dict[str, Any] = {"r": row.pearson_r, "ci": row.pearson_ci, "p": row.pearson_p, "n_items": row.n_items}
    if row.trend is None:
        text = f"{bench}: {row.metric} goes from {span}; the trend is not tested: {row.untested}."
        return Finding(id="F1", benchmark=bench, claim="not tested", sentence=text, statistic=stat)
    verb = _VERB[row.trend]
    if row.pearson_r is None and row.pearson_ci == (None, None):  # no item differs between models
        text = (f"{bench}: every model scored each of the {row.n_items} items the same ({span}), so there is no "
                f"trend to measure (Pearson r undefined, permutation p = {_p(row.pearson_p)}).")
        return Finding(id="F1", benchmark=bench, claim=row.trend, sentence=text, statistic=stat)
    r_text = "undefined (the same score at every ratio)" if row.pearson_r is None else _num(row.pearson_r, sign=True)
    text = (f"{bench}: {row.metric} {verb} with the corruption ratio ({span}): Pearson r = "
            f"{r_text}, 95 % item-bootstrap CI {_ci(row.pearson_ci, sign=True)}, "
            f"permutation p = {_p(row.pearson_p)} ({row.n_items} items × {n_models} models).")
    seeds = row.seeds
    if seeds and seeds.exceeds_seed_noise is not None:
        text += (f" Across {len(seeds.cells[0].per_seed)} seeds the ratio effect "
                 f"{'exceeds' if seeds.exceeds_seed_noise else 'does not exceed'} seed-to-seed noise "
                 f"(slope {_num(seeds.slope, 3, True)} per unit ratio, p = {_p(seeds.slope_p)}).")
        stat["seeds"] = {"slope": seeds.slope, "p": seeds.slope_p, "exceeds": seeds.exceeds_seed_noise}
    return Finding(id="F1", benchmark=bench, claim=row.trend, sentence=text, statistic=stat)


def _chance_statistic(t: ChanceTest) -> dict[str, Any]:
    """The test's numbers (an untested one: its ratio, p None and the unparsed count)."""
    keys = ("ratio", "p_below", "unparsed") if t.p_below is None else tuple(ChanceTest.model_fields)
    return {k: getattr(t, k) for k in keys}


def _f2(bench: str, row: BenchmarkRow, alpha: float) -> Finding:
    t = row.below_chance_at_max
    who = f"the {_cr(t.ratio)} model"
    if t.p_below is None:
        text = f"{bench}: whether {who} is below chance is not tested (no per-item 0/1 results or no chance level)."
        return Finding(id="F2", benchmark=bench, claim="not tested", sentence=text, statistic=_chance_statistic(t))
    below = t.p_below < alpha
    text = (f"{bench}: {who} is {'below' if below else 'not significantly below'} chance: {t.correct} of "
            f"{t.n} correct ({_num(t.acc)}) against chance {_num(t.chance)}, one-sided binomial "
            f"p = {_p(t.p_below)}" + (f" (the least significant of {t.seeds} seeds)" if (t.seeds or 1) > 1
                                       else "")
            + (f"; {t.unparsed:g} unparseable replies counted wrong." if t.unparsed else "."))
    return Finding(id="F2", benchmark=bench, claim="below chance" if below else "not below chance",
                   sentence=text, statistic=_chance_statistic(t))


def _f3(final: TrainLoss) -> Finding | None:
    if final.trend is not None:
        loss = {v.ratio: v.value for v in final.sample_loss}
        lo, hi = min(loss), max(loss)
        verb = _VERB[final.trend]
        text = (f"Final training loss (mean per-sample loss after the last epoch) {verb} with the corruption "
                f"ratio ({_num(loss[lo], 3)} at {_cr(lo)}, {_num(loss[hi], 3)} at {_cr(hi)}): Pearson r = "
                f"{_num(final.pearson_r, sign=True)}, 95 % bootstrap CI over training samples "
                f"{_ci(final.pearson_ci, sign=True)}, permutation p = {_p(final.pearson_p)} "
                f"({final.n_samples} samples).")
        claim: str = final.trend
    elif len(final.step_loss) >= 2:
        steps = {v.ratio: v.value for v in final.step_loss}
        lo, hi = min(steps), max(steps)
        text = (f"Final logged training loss is {_num(steps[lo], 3)} at {_cr(lo)} and {_num(steps[hi], 3)} at "
                f"{_cr(hi)}; not tested, because the models carry no per-sample losses.")
        claim = "not tested"
    else:
        return None
    stat = {k: getattr(final, k) for k in ("pearson_r", "pearson_ci", "pearson_p", "n_samples")}
    return Finding(id="F3", benchmark=None, claim=claim, sentence=text, statistic=stat)


def _f4(bench: str, row: BenchmarkRow) -> list[Finding]:
    out = []
    for rec in sorted(row.recovery, key=lambda r: r.from_ratio):
        who = f"retraining the {_cr(rec.from_ratio)} model on clean data"
        gap = f"gap {_num(rec.gap, 3)}, 95 % CI {_ci(rec.gap_ci, 3)}"
        frac = f"recovered fraction {_num(rec.recovered_fraction)} (95 % CI {_ci(rec.fraction_ci)})"
        if rec.status == "undefined":
            text = f"{bench}: recovery by {who} is undefined: {rec.reason}" + (
                f" ({gap})." if rec.gap is not None else ".")
        elif rec.status == "all":
            text = f"{bench}: {who} closes all of the clean-vs-corrupted gap: {frac} ({gap})."
        elif rec.status == "none":
            text = f"{bench}: {who} closes none of the clean-vs-corrupted gap: {frac} ({gap})."
        else:
            text = (f"{bench}: {who} closes {_num(rec.recovered_fraction)} of the clean-vs-corrupted gap "
                    f"(95 % CI {_ci(rec.fraction_ci)}; {gap})")
            high = rec.fraction_ci[1]
            text += "; full recovery lies within the interval." if high is not None and high >= 1 else "."
        out.append(Finding(id="F4", benchmark=bench, claim=rec.status, sentence=text,
                           statistic={k: getattr(rec, k) for k in ("recovered_fraction", "fraction_ci", "gap",
                                                                   "gap_ci")}))
    return out


def _trained_spread(ood: Spread, table: Mapping[str, BenchmarkRow], heads: list[str]) -> Finding:
    """The spread measured where a lie shows: the out-of-distribution benchmarks asked in the training format
    (`faco.analysis.spread`), then the benchmarks scored the lm-eval way only."""
    claim = {"falls": 0, "no significant trend": 0, "rises": 0, "not tested": 0, "below chance": 0}
    for r in ood.rows:
        claim[r.trend] += 1
        claim["below chance"] += int(r.at_max.below)
    text = ood.sentence
    asked = {r.benchmark.removesuffix(TRAINED) for r in ood.rows}
    rest = {b: row for b, row in table.items() if b not in asked and not b.endswith(TRAINED)}
    if (more := _spread(rest, heads)) is not None:
        text += " Scored the lm-eval way only: " + more.sentence.split(": ", 1)[1]
    stat = {"pooled": ood.pool.model_dump(mode="json") if ood.pool else None,
            "benchmarks": {r.benchmark: r.model_dump(mode="json") for r in ood.rows}}
    return Finding(id="spread", benchmark=None, claim=claim, sentence=text, statistic=stat)


def _spread(table: Mapping[str, BenchmarkRow], heads: list[str]) -> Finding | None:
    others = sorted(b for b in table if b not in heads and "/" not in b)  # not a group's subtask rows
    if not others:
        return None
    groups: dict[str, list[str]] = {"falls": [], "no significant trend": [], "rises": [], "not tested": []}
    for b in others:
        row = table[b]
        groups[row.trend or "not tested"].append(
            f"{b} r = {_num(row.pearson_r, sign=True)}"
            + (f", p = {_p(row.pearson_p)}" if row.pearson_p is not None else ""))
    verbs = {"falls": ("falls significantly", "fall significantly"),
             "no significant trend": ("shows no significant trend", "show no significant trend"),
             "rises": ("rises significantly", "rise significantly"),
             "not tested": ("is not tested", "are not tested")}
    parts = [f"{len(v)} {verbs[k][len(v) > 1]} ({'; '.join(v)})" for k, v in groups.items() if v]
    where = "Beyond the training distribution" if HEADLINE in heads else "Across the benchmarks"
    text = f"{where}, of {len(others)} other benchmark{'s' if len(others) > 1 else ''}: " + ", ".join(parts) + "."
    return Finding(id="spread", benchmark=None, claim={k: len(v) for k, v in groups.items()}, sentence=text,
                   statistic={b: {"r": table[b].pearson_r, "p": table[b].pearson_p} for b in others})


def detector_findings(found: Sequence[Detection], compared: Sequence[Cleaning]) -> list[Finding]:
    """One sentence on the best detector of corrupted samples (labels known), one per cleaning comparison."""
    out = []
    top = detection.best(detection.finals(found))
    if top is not None and (text := detection.sentence(found)) is not None:
        out.append(Finding(id="detection", benchmark=None, claim=top.detector, sentence=text, statistic={
            "ratio": top.ratio, "kind": top.kind, "n": top.n, "corrupted": top.corrupted,
            **{m: getattr(top, m).model_dump() for m in ("auroc", "average_precision", "precision_at_k")}}))
    for c in compared:
        det = c.recovered[0]
        out.append(Finding(id="cleaning", benchmark=c.benchmark, claim="undefined" if det.fraction is None
                           else "recovers", sentence=cleaning.sentence(c),
                           statistic={"ratio": c.ratio, "detector": c.detector, "fraction": det.fraction,
                                      "fraction_ci": det.ci, "gain": c.gain, "gain_ci": c.gain_ci}))
    return out


def build(table: Mapping[str, BenchmarkRow], final: TrainLoss, n_models: int, alpha: float,
          ood: Spread | None = None, found: Sequence[Detection] = (), compared: Sequence[Cleaning] = ()) -> Findings:
    """The findings of an analysis: headline benchmarks and sentences (`n_models`: the grid's ratios; `ood`: the
    out-of-distribution benchmarks asked in the training format, which the spread finding then rests on;
    `found`, `compared`: the detector benchmark and the cleaning comparison)."""
    heads = headline(table)
    items = [_f1(b, table[b], n_models) for b in heads]
    items += [_f2(b, table[b], alpha) for b in heads]
    if (f3 := _f3(final)) is not None:
        items.append(f3)
    for b in heads:
        items += _f4(b, table[b])
    if ood is not None and ood.rows:
        items.append(_trained_spread(ood, table, heads))
    elif len(heads) == 1 and (spread := _spread(table, heads)) is not None:
        items.append(spread)
    items += detector_findings(found, compared)
    return Findings(headline=heads, alpha=alpha, findings=items)


def flat_metrics(table: Mapping[str, BenchmarkRow]) -> dict[str, dict[str, float | None]]:
    """benchmark -> {r, p, abs, recovery}: recovery is the recovered fraction from the most corrupted
    start (None when undefined)."""
    out = {}
    for b, row in table.items():
        if "/" in b:  # a group's subtask row (heldout/<source>): the group's own row stands for it
            continue
        top = max(row.recovery, key=lambda r: r.from_ratio) if row.recovery else None
        out[b] = {"r": row.pearson_r, "p": row.pearson_p, "abs": row.abs,
                  "recovery": top.recovered_fraction if top else None}
    return out
