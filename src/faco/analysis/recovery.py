"""Recovery (paper Fig. 6, F4): how much of the clean-vs-corrupted gap retraining on clean data closes.

`fraction = (recovered − corrupted) / (clean − corrupted)`; the gap gets a paired item-bootstrap
interval, and when it contains 0 the fraction is undefined: dividing by a gap that may be noise
gives fractions like −2.0 (docs/analysis.md).
"""

from __future__ import annotations

from faco.analysis import bootstrap, stats
from faco.analysis.items import Columns
from faco.analysis.schema import Recovery, RecoveryStderr
from faco.roles import Role


def recovery(cols: Columns | None, from_ratio: float, clean: float | None, corrupted: float | None,
             recovered: float | None, stderr: RecoveryStderr, level: float = 0.95) -> Recovery:
    """The recovery of the model retrained from `from_ratio`, judged against the noise of the items."""
    rec_col = cols.col(Role.RECOVERY, from_ratio) if cols is not None else None
    out = Recovery(from_ratio=from_ratio, clean=clean, corrupted=corrupted, recovered=recovered, stderr=stderr,
                   recovered_ci=(bootstrap.bounds(bootstrap.percentile(cols.boot[:, rec_col]))
                                 if cols is not None and rec_col is not None else None))
    if clean is None or corrupted is None or recovered is None:
        out.reason = "a score is missing"
        return out
    out.gap = clean - corrupted
    reps = [cols.replicates(role, ratio) for role, ratio in
            ((Role.GRID, 0.0), (Role.GRID, from_ratio), (Role.RECOVERY, from_ratio))] if cols is not None else []
    if cols is None or any(r is None for r in reps):
        return out
    c, k, r = reps
    assert c is not None and k is not None and r is not None
    gap_ci = bootstrap.percentile(c - k, level)
    out.gap_ci = bootstrap.bounds(gap_ci)
    if not (gap_ci.low > 0 or gap_ci.high < 0):
        out.reason = "clean ≈ corrupted within noise"
        return out
    frac = stats.recovery_fraction(clean, corrupted, recovered)
    ci = bootstrap.percentile(bootstrap.ratio_of_gaps(r - k, c - k), level)
    out.recovered_fraction, out.fraction_ci, out.reason = frac, bootstrap.bounds(ci), None
    out.status = "all" if frac >= 1 else ("none" if ci.high < 0 or frac <= 0 else "partial")
    return out
