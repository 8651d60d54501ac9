"""Table 1: one row per benchmark (or `group/subtask`) with every statistic and its item-level uncertainty.

Scores and lm-eval's stderr per grid model (the mean over seeds), the base model, the paired item
bootstrap CIs of every score, of every Δ vs base and of ABS, Pearson r of score vs ratio with its
CI and the within-item permutation p, the correct-data threshold, recovery and the chance test
(formulas: docs/analysis.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from faco.analysis import bootstrap, chance, stats, threshold
from faco.analysis.inputs import Evals, primary, score, spec, stderr
from faco.analysis.items import Columns, columns
from faco.analysis.recovery import recovery
from faco.analysis.schema import (
    NO_INTERVAL,
    BaseScore,
    BenchmarkRow,
    Cell,
    Interval,
    Recovery,
    RecoveryStderr,
    Trend,
)
from faco.analysis.seeds import seed_test
from faco.config import AnalyzeConfig
from faco.roles import Role


def verdict(r: float | None, p: float | None, alpha: float) -> Trend | None:
    """falls / rises (the sign of r) when p < alpha, else no significant trend; None when untested."""
    if p is None:
        return None
    return "no significant trend" if p >= alpha or r is None else ("falls" if r < 0 else "rises")


def _ci(cols: Columns | None, role: Role, ratio: float | None = None) -> Interval | None:
    """The bootstrap CI of one model's score, None when it has no column."""
    i = cols.col(role, ratio) if cols is not None else None
    return None if cols is None or i is None else bootstrap.bounds(bootstrap.percentile(cols.boot[:, i]))


def _diff_ci(cols: Columns | None, a: tuple[Role, float | None], b: tuple[Role, float | None]) -> Interval:
    """The paired bootstrap CI of the difference of two models' scores."""
    i, j = (cols.col(*a), cols.col(*b)) if cols is not None else (None, None)
    if cols is None or i is None or j is None:
        return NO_INTERVAL
    return bootstrap.bounds(bootstrap.percentile(cols.boot[:, i] - cols.boot[:, j]))


def _trend(ratios: Sequence[float], scores: Mapping[float, float], cols: Columns | None, cfg: AnalyzeConfig
           ) -> tuple[float | None, Interval, float | None]:
    """Pearson r of score vs ratio, its item-bootstrap CI and permutation p (r alone without items)."""
    if cols is not None and len(ratios) >= 2:
        tr = bootstrap.trend(ratios, cols.values[:, : len(ratios)], cfg.bootstrap, cfg.seed)
        return bootstrap.finite(tr.r), bootstrap.bounds(tr.ci), bootstrap.finite(tr.p)
    if len(ratios) < 2:
        return None, NO_INTERVAL, None
    r = bootstrap.pearson_rows(ratios, np.array([[scores[x] for x in ratios]]))[0]
    return bootstrap.finite(float(r)), NO_INTERVAL, None


def _untested(ev: Evals, ratios: Sequence[float], trend: Trend | None) -> str | None:
    if trend is not None:
        return None
    if list(ratios) != ev.ratios:
        return "it was not evaluated at every ratio"
    return "fewer than two ratios" if len(ratios) < 2 else "the evaluations carry no per-item results"


def _recoveries(ev: Evals, bench: str, metric: str, cells: Mapping[float, Cell], cols: Columns | None
                ) -> list[Recovery]:
    """Recovery of every recovered model's start ratio, by start ratio."""
    out = []
    for fr, evs in sorted(ev.recovery.items()):
        clean, corrupted = cells.get(0.0), cells.get(fr)
        se = RecoveryStderr(clean=clean.stderr if clean else None, corrupted=corrupted.stderr if corrupted else None,
                            recovered=stderr(evs, bench, metric))
        out.append(recovery(cols, fr, clean.score if clean else None, corrupted.score if corrupted else None,
                            score(evs, bench), se))
    return out


def benchmark_row(ev: Evals, bench: str, cfg: AnalyzeConfig, alpha: float) -> BenchmarkRow | None:
    """Table 1's row of one benchmark; None when no grid model has a score for it."""
    metric = primary(bench)
    scores = {r: x for r in ev.ratios if (x := score(ev.grid[r], bench)) is not None}
    if not scores:
        return None
    ratios = [r for r in ev.ratios if r in scores]
    cols = columns(ev, bench, metric, cfg) if ratios == ev.ratios else None
    base_score = score([ev.base], bench) if ev.base is not None else None
    base = BaseScore(score=base_score, stderr=stderr([ev.base], bench, metric) if ev.base else None,
                     score_ci=_ci(cols, Role.BASE))
    cells = {r: Cell(ratio=r, score=scores[r], stderr=stderr(ev.grid[r], bench, metric),
                     score_ci=_ci(cols, Role.GRID, r),
                     delta_vs_base=None if base_score is None else scores[r] - base_score,
                     delta_ci=_diff_ci(cols, (Role.GRID, r), (Role.BASE, None))) for r in ratios}
    ends = 0.0 in scores and 1.0 in scores
    r, r_ci, p = _trend(ratios, scores, cols, cfg)
    trend = verdict(r, p, alpha)
    row_chance = chance.chance(ev, bench)
    top = max(ratios)
    return BenchmarkRow(
        domain=found.domain if (found := spec(bench)) else None, metric=metric, chance=row_chance,
        n_items=len(cols.keys) if cols else None, cells=list(cells.values()), base=base,
        abs=stats.abs_drop(scores) if ends else None,
        abs_ci=_diff_ci(cols, (Role.GRID, 0.0), (Role.GRID, 1.0)) if ends else NO_INTERVAL,
        pearson_r=r, pearson_ci=r_ci, pearson_p=p, trend=trend, untested=_untested(ev, ratios, trend),
        threshold=threshold.threshold(ratios, scores, cols.boot[:, : len(ratios)] if cols else None,
                                      cfg.threshold_fraction),
        recovery=_recoveries(ev, bench, metric, cells, cols),
        below_chance_at_max=chance.at_max(ev.grid[top], top, bench, metric, row_chance),
        seeds=seed_test(ev, bench, alpha))
