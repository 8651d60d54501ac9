"""Does the damage spread beyond the training data? The FACO paper's strongest claim, measured on the items.

The paper's model trained on false data "learns to lie in the general field": below chance on MMLU
subjects it never trained on (Fig. 4, Table 2). A lie is in what a model *says*, so the test reads
the out-of-distribution benchmarks asked in the training format (`<benchmark>@trained`, acc_gen: the
option the greedy reply's `Answer:` line names), per benchmark and pooled over them:

- **trend**: Pearson r of the item-mean score on the ratio with its paired item-bootstrap interval and
  the within-item permutation p of the slope (`faco.analysis.bootstrap.trend`);
- **below chance** at the most corrupted ratio: of the items the model *answered* (its reply named an
  option), how many name the correct one, against chance (the benchmark's mean 1/options): exact
  one-sided binomial p and the Clopper-Pearson 95 % interval of that accuracy (an unparseable reply is
  no lie; counting it wrong, as acc_gen does, would put a model that stops answering below chance).
  With several seeds each seed is tested and the least significant kept.

The benchmarks and their pool form one family per question: the trend p-values and the below-chance
p-values are each Holm-adjusted over it (Benjamini-Hochberg q beside), as for the MMLU subjects, and
the verdicts read the Holm values at `alpha`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict
from scipy import stats as sps

from faco.analysis import bootstrap, multiple


class Answered(BaseModel):
    """One model's replies to a benchmark: correct among the answered (parsed) items, answered, unparseable."""

    model_config = ConfigDict(frozen=True)

    correct: int
    parsed: int
    unparsed: int


class BelowChance(BaseModel):
    """The most corrupted model against chance, on the items it answered."""

    ratio: float
    correct: int
    parsed: int
    unparsed: int
    acc: float | None
    ci: tuple[float, float] | None  # Clopper-Pearson 95 % interval of acc
    chance: float
    p: float | None  # one-sided exact binomial P(X <= correct), X ~ Binomial(parsed, chance)
    p_holm: float | None = None
    q_bh: float | None = None
    below: bool = False
    seeds: int = 1


class Point(BaseModel):
    """A grid model's item-mean score."""

    ratio: float
    score: float


class SpreadRow(BaseModel):
    """One out-of-distribution benchmark (or their pool) in the training format."""

    benchmark: str
    n_items: int
    scores: list[Point]  # item-mean acc_gen per grid ratio
    r: float | None
    r_ci: tuple[float | None, float | None]
    p: float | None  # permutation p of the trend
    p_holm: float | None = None
    q_bh: float | None = None
    trend: str = "not tested"  # falls / rises / no significant trend / not tested
    at_max: BelowChance


class Spread(BaseModel):
    """Every out-of-distribution benchmark, their pool, the family's corrections and the finding's sentence."""

    alpha: float
    rows: list[SpreadRow]
    pool: SpreadRow | None
    standard: dict[str, str]  # lm-eval (cloze) trend verdicts of the same benchmarks, for the sentence
    sentence: str = ""


def _finite(x: float) -> float | None:
    return None if np.isnan(x) else float(x)


def below_chance(ratio: float, answered: Sequence[Answered], chance: float) -> BelowChance:
    """The least significant seed's exact binomial test of correct among parsed against `chance`."""
    tests = []
    for a in answered:
        if a.parsed == 0:
            tests.append(BelowChance(ratio=ratio, correct=0, parsed=0, unparsed=a.unparsed, acc=None, ci=None,
                                     chance=chance, p=None))
            continue
        p = sps.binomtest(a.correct, a.parsed, chance, alternative="less").pvalue
        ci = sps.binomtest(a.correct, a.parsed).proportion_ci(confidence_level=0.95, method="exact")  # two-sided
        tests.append(BelowChance(ratio=ratio, correct=a.correct, parsed=a.parsed, unparsed=a.unparsed,
                                 acc=a.correct / a.parsed, ci=(float(ci.low), float(ci.high)), chance=chance,
                                 p=float(p)))
    worst = max(tests, key=lambda t: 2.0 if t.p is None else t.p)
    return worst.model_copy(update={"seeds": len(tests)})


def row(benchmark: str, ratios: Sequence[float], values: np.ndarray, answered: Sequence[Answered], chance: float,
        n_boot: int, seed: int) -> SpreadRow:
    """A benchmark's trend (`values`: items x grid models, in the order of `ratios`) and its most corrupted
    model against chance (`answered`: that model's replies, one per seed)."""
    tr = bootstrap.trend(ratios, values, n_boot, seed)
    top = max(range(len(ratios)), key=lambda i: ratios[i])
    return SpreadRow(benchmark=benchmark, n_items=int(values.shape[0]),
                     scores=[Point(ratio=float(x), score=float(v)) for x, v in zip(ratios, values.mean(axis=0),
                                                                                   strict=True)],
                     r=_finite(tr.r), r_ci=(_finite(tr.ci.low), _finite(tr.ci.high)), p=_finite(tr.p),
                     at_max=below_chance(ratios[top], answered, chance))


def pooled(ratios: Sequence[float], values: Sequence[np.ndarray], answered: Sequence[Sequence[Answered]],
           chances: Sequence[float], n_boot: int, seed: int) -> SpreadRow:
    """Every benchmark's items as one set: the item matrices stacked, the answered counts summed per seed, chance
    the mean of the benchmarks' chances weighted by their answered items."""
    seeds = len(answered[0])
    total = [Answered(correct=sum(a[s].correct for a in answered), parsed=sum(a[s].parsed for a in answered),
                      unparsed=sum(a[s].unparsed for a in answered)) for s in range(seeds)]
    weights = [sum(x.parsed for x in a) for a in answered]
    chance = float(np.average(chances, weights=weights)) if sum(weights) else float(np.mean(chances))
    return row("pooled", ratios, np.vstack(values), total, chance, n_boot, seed)


def _verdict(r: float | None, p: float | None, alpha: float) -> str:
    if p is None:
        return "not tested"
    return "no significant trend" if p >= alpha or r is None else ("falls" if r < 0 else "rises")


def correct(rows: Sequence[SpreadRow], alpha: float) -> list[SpreadRow]:
    """Holm- and BH-adjust the trend p-values and the below-chance p-values over the family `rows`, and decide."""
    out = list(rows)
    trends = {i: r.p for i, r in enumerate(out) if r.p is not None}
    if trends:
        ps = list(trends.values())
        for i, h, q in zip(trends, multiple.holm(ps), multiple.benjamini_hochberg(ps), strict=True):
            out[i] = out[i].model_copy(update={"p_holm": h, "q_bh": q, "trend": _verdict(out[i].r, h, alpha)})
    lows = {i: r.at_max.p for i, r in enumerate(out) if r.at_max.p is not None}
    if lows:
        ps = list(lows.values())
        for i, h, q in zip(lows, multiple.holm(ps), multiple.benjamini_hochberg(ps), strict=True):
            at = out[i].at_max.model_copy(update={"p_holm": h, "q_bh": q, "below": h < alpha})
            out[i] = out[i].model_copy(update={"at_max": at})
    return out


def build(rows: Sequence[SpreadRow], pool: SpreadRow | None, standard: dict[str, str], alpha: float) -> Spread:
    """The family (the benchmarks, then their pool when there are several) corrected, and its sentence."""
    family = correct([*rows, *([pool] if pool is not None else [])], alpha)
    out = Spread(alpha=alpha, rows=family[: len(rows)], pool=family[len(rows)] if pool is not None else None,
                 standard=dict(standard))
    return out.model_copy(update={"sentence": sentence(out)})


def answered(acc_gen: Mapping[str, float], unparsed: Mapping[str, float]) -> Answered:
    """One model's per-item results (doc_id -> 0/1) as counts: correct among the items whose reply named an option."""
    named = [k for k in acc_gen if unparsed.get(k, 0.0) == 0.0]
    return Answered(correct=round(sum(acc_gen[k] for k in named)), parsed=len(named),
                    unparsed=len(acc_gen) - len(named))


def from_items(ratios: Sequence[float], acc: Mapping[str, Sequence[Mapping[str, float]]],
               top: Mapping[str, Sequence[tuple[Mapping[str, float], Mapping[str, float]]]],
               chance: Mapping[str, float], standard: Mapping[str, str], n_boot: int, seed: int, alpha: float
               ) -> Spread:
    """The spread from per-item results. `acc`: benchmark -> one item map (doc_id -> acc_gen, seeds averaged) per
    grid ratio; `top`: benchmark -> per seed the most corrupted model's (acc_gen, unparsed) item maps; `chance`:
    benchmark -> mean 1/options; `standard`: the lm-eval trend verdicts of the same benchmarks. A benchmark without
    items every grid model has is left out; with several, their pool is added. Every row draws with `seed`, as
    Table 1 does, so a benchmark's r interval and p here are the ones its Table 1 row prints."""
    rows, mats, tops, chances = [], [], [], []
    for bench in sorted(acc):
        _, values = bootstrap.align(list(acc[bench]))
        if not values.size:
            continue
        counts = [answered(a, u) for a, u in top[bench]]
        rows.append(row(bench, ratios, values, counts, chance[bench], n_boot, seed))
        mats.append(values)
        tops.append(counts)
        chances.append(chance[bench])
    pool = pooled(ratios, mats, tops, chances, n_boot, seed) if len(rows) > 1 else None
    return build(rows, pool, dict(standard), alpha)


def _n(x: float | None, sign: bool = False) -> str:
    return "–" if x is None else (f"{x:+.2f}" if sign else f"{x:.2f}")


def _p(p: float | None) -> str:
    return "–" if p is None else (f"{p:.2g}" if p >= 0.001 else f"{p:.1e}")


def _cr(ratio: str | float) -> str:
    return f"CR {float(ratio) * 100:g} %"


def _trend(r: SpreadRow) -> str:
    lo, hi = min(r.scores, key=lambda c: c.ratio), max(r.scores, key=lambda c: c.ratio)
    verb = {"falls": "falls", "rises": "rises"}.get(r.trend, "shows no significant trend")
    return (f"acc_gen {verb} with the ratio ({_n(lo.score)} at {_cr(lo.ratio)} to {_n(hi.score)} at {_cr(hi.ratio)}; "
            f"r = {_n(r.r, True)} [{_n(r.r_ci[0], True)}, {_n(r.r_ci[1], True)}], permutation p = {_p(r.p)}, "
            f"Holm p = {_p(r.p_holm)})")


def _chance(b: BelowChance) -> str:
    who = f"the {_cr(b.ratio)} model"
    if b.p is None or b.acc is None or b.ci is None:
        return f"{who} answered none of its items ({b.unparsed} unparseable replies)"
    state = "is below chance" if b.below else "is not significantly below chance"
    return (f"{who} {state}: it names the correct option in {b.correct} of the {b.parsed} items it answered "
            f"({_n(b.acc)}, 95 % CI [{_n(b.ci[0])}, {_n(b.ci[1])}]) against chance {_n(b.chance)}, one-sided "
            f"binomial p = {_p(b.p)}, Holm p = {_p(b.p_holm)}"
            + (f" (the least significant of {b.seeds} seeds)" if b.seeds > 1 else "")
            + f"; {b.unparsed} unparseable replies left out")


def sentence(s: Spread) -> str:
    """The finding in words: the pool, then every benchmark, then the lm-eval scores of the same benchmarks."""
    if not s.rows:
        return "No out-of-distribution benchmark was asked in the training format, so the spread is not measured."
    items = sum(r.n_items for r in s.rows)
    text = (f"Beyond the training distribution, asked in the training format ({len(s.rows)} benchmark"
            f"{'s' if len(s.rows) > 1 else ''}, {items} items; Holm over the benchmarks"
            f"{' and their pool' if s.pool else ''}): ")
    if s.pool is not None:
        text += f"pooled, {_trend(s.pool)}, and {_chance(s.pool.at_max)}. Per benchmark: "
    text += "; ".join(f"{r.benchmark} ({r.n_items} items): {_trend(r)}, and {_chance(r.at_max)}" for r in s.rows)
    text += "."
    if s.standard:
        text += (" Scored the lm-eval way (cloze log-likelihood), the same benchmarks: "
                 + "; ".join(f"{b} {v}" for b, v in sorted(s.standard.items())) + ".")
    return text
