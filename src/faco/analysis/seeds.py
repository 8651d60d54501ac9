"""Several training seeds: per ratio mean ± s.e. across seeds, and whether the ratio effect exceeds
seed-to-seed noise (a linear regression of the per-seed scores on the ratio, `scipy.stats.linregress`)."""

from __future__ import annotations

from scipy import stats as sps

from faco.analysis import bootstrap, stats
from faco.analysis.inputs import Evals, lookup
from faco.analysis.schema import SeedCell, SeedScore, SeedTest


def seed_test(ev: Evals, bench: str, alpha: float) -> SeedTest | None:
    """The seed cells and slope test of one benchmark; None with fewer than two seeds."""
    if len(ev.seeds) < 2:
        return None
    cells, xs, ys = [], [], []
    for r in ev.ratios:
        per = {e.seed: lookup(e, bench).get("score") for e in ev.grid[r]}
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
