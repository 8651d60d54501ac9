"""Several training seeds: per ratio mean ± s.e. across seeds, and whether the ratio effect exceeds
seed-to-seed noise (a linear regression of the per-seed values on the ratio, `scipy.stats.linregress`)."""

from __future__ import annotations

from collections.abc import Mapping

from scipy import stats as sps

from faco.analysis import bootstrap, stats
from faco.analysis.inputs import Evals, lookup
from faco.analysis.schema import SeedCell, SeedScore, SeedTest


def from_values(per_ratio: Mapping[float, Mapping[int | None, float | None]], alpha: float) -> SeedTest:
    """The seed cells and slope test of per-seed values (`per_ratio`: ratio -> seed -> value; None: missing)."""
    cells, xs, ys = [], [], []
    for r, per in sorted(per_ratio.items()):
        vals = [v for v in per.values() if v is not None]
        if not vals:
            continue
        mean, se = stats.mean_stderr(vals)
        cells.append(SeedCell(ratio=r, mean=mean, se=bootstrap.finite(se), n_seeds=len(vals),
                              per_seed=[SeedScore(seed=s, score=v) for s, v in sorted(per.items(),
                                                                                     key=lambda kv: str(kv[0]))]))
        xs += [r] * len(vals)
        ys += vals
    if len(set(xs)) < 2 or len(xs) < 3 or len(set(ys)) < 2:
        return SeedTest(cells=cells)
    fit = sps.linregress(xs, ys)
    return SeedTest(cells=cells, slope=float(fit.slope), slope_stderr=float(fit.stderr), slope_p=float(fit.pvalue),
                    exceeds_seed_noise=bool(fit.pvalue < alpha), n_points=len(xs))


def seed_test(ev: Evals, bench: str, alpha: float) -> SeedTest | None:
    """The seed cells and slope test of one benchmark's scores; None with fewer than two seeds."""
    if len(ev.seeds) < 2:
        return None
    return from_values({r: {e.seed: lookup(e, bench).get("score") for e in ev.grid[r]} for r in ev.ratios}, alpha)
