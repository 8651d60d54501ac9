"""Is paper 002's gap trend larger than seed-to-seed noise?

One seed cannot carry a HANS claim: fine-tunes that differ only in their seed differ on HANS
non-entailment by up to 50 points against 1 point on MNLI (McCoy et al., 2020). With k seeds every
(ratio, seed) model gives one value (the gap, MNLI acc - HANS non-entailment acc, from its scores). The
trend is tested against the seeds' spread as the benchmark rows' seed test is (`faco.analysis.seeds`:
an ordinary least-squares regression of the k x ratios values on the ratio, `scipy.stats.linregress`,
whose residual variance is the seed-to-seed and lack-of-fit variance; the trend exceeds it when the
slope's two-sided t-test gives p < alpha). Beside it: the change from the smallest to the largest ratio
per seed (paired by seed) with its mean, standard error and 95 % t interval, and the largest difference
between seeds at one ratio.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from pydantic import BaseModel
from scipy import stats as sps

from faco.analysis import seeds
from faco.analysis.schema import SeedTest


class Change(BaseModel):
    """Value at the largest ratio minus value at the smallest, per seed, summarised over seeds."""

    mean: float
    se: float | None
    ci: tuple[float, float] | None  # 95 % t interval over seeds
    n_seeds: int


class SeedNoise(BaseModel):
    """The seed test of one quantity, its per-seed change and the sentence."""

    what: str
    test: SeedTest
    change: Change | None
    spread: float  # the largest difference between two seeds at one ratio
    sentence: str = ""


def _change(per_ratio: Mapping[float, Mapping[int, float]]) -> Change | None:
    lo, hi = per_ratio[min(per_ratio)], per_ratio[max(per_ratio)]
    diffs = [hi[s] - lo[s] for s in sorted(set(lo) & set(hi))]
    if min(per_ratio) == max(per_ratio) or not diffs:
        return None
    v = np.asarray(diffs)
    mean = float(v.mean())
    if v.size < 2:
        return Change(mean=mean, se=None, ci=None, n_seeds=1)
    se = float(v.std(ddof=1) / math.sqrt(v.size))
    half = float(sps.t.ppf(0.975, v.size - 1)) * se
    return Change(mean=mean, se=se, ci=(mean - half, mean + half), n_seeds=int(v.size))


def seed_noise(what: str, per_ratio: Mapping[float, Mapping[int, float]], alpha: float) -> SeedNoise:
    """`per_ratio`: ratio -> seed -> the value of that seed's model."""
    spread = max((max(v.values()) - min(v.values()) for v in per_ratio.values() if v), default=0.0)
    values: dict[float, dict[int | None, float | None]] = {r: {s: x for s, x in v.items()}
                                                           for r, v in per_ratio.items()}
    test = seeds.from_values(values, alpha)
    if len({s for v in per_ratio.values() for s in v}) < 2:  # one seed: no seed-to-seed noise to test against
        test = SeedTest(cells=test.cells)
    out = SeedNoise(what=what, test=test, change=_change(per_ratio), spread=spread)
    return out.model_copy(update={"sentence": sentence(out)})


def _n(x: float | None, sign: bool = True) -> str:
    return "–" if x is None else (f"{x:+.3f}" if sign else f"{x:.3f}")


def sentence(s: SeedNoise) -> str:
    """Whether the trend exceeds seed-to-seed noise, with the slope's test and the per-seed change."""
    t = s.test
    k = max((c.n_seeds for c in t.cells), default=0)
    if t.slope is None or t.slope_p is None:
        return (f"Seed-to-seed noise of the {s.what} is not measured: it needs two or more seeds and values that "
                f"vary ({k} seed{'s' if k != 1 else ''}).")
    verdict = "exceeds" if t.exceeds_seed_noise else "does not exceed"
    text = (f"Across {k} seeds the trend of the {s.what} {verdict} seed-to-seed noise: slope of the per-seed values "
            f"on the share {_n(t.slope)} (s.e. {_n(t.slope_stderr, False)}), t-test p = {t.slope_p:.2g} "
            f"({t.n_points} models)")
    if s.change is not None and s.change.ci is not None:
        lo, hi = min(c.ratio for c in t.cells), max(c.ratio for c in t.cells)
        text += (f"; its change from {lo:.0%} to {hi:.0%} is {_n(s.change.mean)} per seed on average "
                 f"(s.e. {_n(s.change.se, False)}, 95 % t interval {_n(s.change.ci[0])} to {_n(s.change.ci[1])})")
    return text + f"; seeds differ by up to {s.spread:.3f} at one share."
