"""Is a trend larger than seed-to-seed noise? Paper 002's MNLI-HANS gap over several training seeds.

One seed cannot carry a HANS claim: fine-tunes that differ only in their seed differ on HANS
non-entailment by up to 50 points against 1 point on MNLI (McCoy et al., 2020). With k seeds every
(ratio, seed) model gives one value (here the gap, MNLI acc - HANS non-entailment acc). The trend is
tested against the seeds' spread by an ordinary least-squares regression of the k x ratios per-seed
values on the ratio (`scipy.stats.linregress`): its residual variance is the seed-to-seed (and
lack-of-fit) variance, and the trend exceeds it when the slope's two-sided t-test gives p < alpha.
Beside it: per ratio the mean and standard error over seeds, and the change from the smallest to the
largest ratio per seed (paired by seed) with its mean, standard error and 95 % t interval.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from pydantic import BaseModel
from scipy import stats as sps


class Cell(BaseModel):
    """One ratio across seeds."""

    ratio: float
    mean: float
    se: float | None  # s / sqrt(k), ddof 1; None for one seed
    per_seed: dict[int, float]


class Change(BaseModel):
    """Value at the largest ratio minus value at the smallest, per seed, summarised over seeds."""

    mean: float
    se: float | None
    ci: tuple[float, float] | None  # 95 % t interval over seeds
    n_seeds: int


class SeedTest(BaseModel):
    """The slope of the per-seed values on the ratio and whether it exceeds seed-to-seed noise."""

    what: str
    cells: list[Cell]
    slope: float | None
    slope_stderr: float | None
    slope_p: float | None
    exceeds_seed_noise: bool | None
    n_points: int
    change: Change | None
    sentence: str = ""


def _mean_se(values: Sequence[float]) -> tuple[float, float | None]:
    v = np.asarray(values, dtype=float)
    return float(v.mean()), (float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else None)


def _change(ratios: Sequence[float], per_seed: Mapping[int, Sequence[float]]) -> Change | None:
    lo, hi = int(np.argmin(ratios)), int(np.argmax(ratios))
    diffs = [vals[hi] - vals[lo] for vals in per_seed.values()]
    if lo == hi or not diffs:
        return None
    mean, se = _mean_se(diffs)
    ci = None
    if se is not None:
        half = float(sps.t.ppf(0.975, len(diffs) - 1)) * se
        ci = (mean - half, mean + half)
    return Change(mean=mean, se=se, ci=ci, n_seeds=len(diffs))


def seed_test(what: str, ratios: Sequence[float], per_seed: Mapping[int, Sequence[float]], alpha: float = 0.05
              ) -> SeedTest:
    """`per_seed`: seed -> the value at each of `ratios` (in that order)."""
    cells = []
    for j, r in enumerate(ratios):
        vals = {s: float(v[j]) for s, v in per_seed.items()}
        mean, se = _mean_se(list(vals.values()))
        cells.append(Cell(ratio=float(r), mean=mean, se=se, per_seed=vals))
    xs = [float(r) for v in per_seed.values() for r in ratios]
    ys = [float(y) for v in per_seed.values() for y in v]
    out = SeedTest(what=what, cells=cells, slope=None, slope_stderr=None, slope_p=None, exceeds_seed_noise=None,
                   n_points=len(xs), change=_change(ratios, per_seed))
    if len(per_seed) >= 2 and len(set(xs)) >= 2 and len(set(ys)) >= 2:
        fit = sps.linregress(xs, ys)
        out = out.model_copy(update={"slope": float(fit.slope), "slope_stderr": float(fit.stderr),
                                     "slope_p": float(fit.pvalue), "exceeds_seed_noise": bool(fit.pvalue < alpha)})
    return out.model_copy(update={"sentence": sentence(out)})


def _n(x: float | None, sign: bool = True) -> str:
    return "–" if x is None else (f"{x:+.3f}" if sign else f"{x:.3f}")


def sentence(t: SeedTest) -> str:
    """Whether the trend exceeds seed-to-seed noise, with the slope's test and the per-seed change."""
    k = len(t.cells[0].per_seed) if t.cells else 0
    if t.slope is None:
        return (f"Seed-to-seed noise of the {t.what} is not measured: it needs two or more seeds and values that "
                f"vary ({k} seed{'s' if k != 1 else ''}).")
    verdict = "exceeds" if t.exceeds_seed_noise else "does not exceed"
    text = (f"Across {k} seeds the trend of the {t.what} {verdict} seed-to-seed noise: slope of the per-seed values "
            f"on the share {_n(t.slope)} (s.e. {_n(t.slope_stderr, False)}), t-test p = {t.slope_p:.2g} "
            f"({t.n_points} models)")
    if t.change is not None and t.change.ci is not None:
        lo, hi = min(t.cells, key=lambda c: c.ratio).ratio, max(t.cells, key=lambda c: c.ratio).ratio
        text += (f"; its change from {lo:.0%} to {hi:.0%} is {_n(t.change.mean)} per seed on average "
                 f"(s.e. {_n(t.change.se, False)}, 95 % t interval {_n(t.change.ci[0])} to {_n(t.change.ci[1])})")
    spread = max((max(c.per_seed.values()) - min(c.per_seed.values()) for c in t.cells), default=0.0)
    return text + f"; seeds differ by up to {spread:.3f} at one share."
