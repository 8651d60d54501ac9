"""Paper 001's correct-data threshold on a monotone (isotonic) fit of score vs correct share."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from scipy.optimize import isotonic_regression

from faco.analysis import bootstrap
from faco.analysis.schema import Threshold


def isotonic(scores: Sequence[float]) -> list[float]:
    """The non-decreasing least-squares fit of `scores` (pool-adjacent-violators, equal weights)."""
    return [float(v) for v in isotonic_regression(np.asarray(scores, dtype=float), increasing=True).x]


def crossing(correct_shares: Sequence[float], scores: Sequence[float], target: float) -> float | None:
    """Smallest correct share at which the isotonic fit of score vs share reaches `target`.

    The points are sorted by correct share (distinct), the scores replaced by their non-decreasing
    fit f. If f(s_0) >= target, s_0; else the one adjacent pair with f_i < target <= f_{i+1} gives
    s_i + (target - f_i)(s_{i+1} - s_i)/(f_{i+1} - f_i). None ("not reached") when the fit stays
    below target at every share. A monotone fit crosses once, so a dip after a lucky early point
    cannot make the threshold look lower than the curve supports.
    """
    if len(correct_shares) != len(scores) or not scores:
        raise ValueError("correct_shares and scores must be non-empty and of equal length")
    if len(set(correct_shares)) != len(correct_shares):
        raise ValueError(f"correct_shares must be distinct, got {list(correct_shares)}")
    pts = sorted(zip(correct_shares, scores, strict=True))
    shares = [float(s) for s, _ in pts]
    fit = isotonic([y for _, y in pts])
    if fit[0] >= target:
        return shares[0]
    for i in range(len(fit) - 1):
        if fit[i] < target <= fit[i + 1]:
            return shares[i] + (target - fit[i]) * (shares[i + 1] - shares[i]) / (fit[i + 1] - fit[i])
    return None


def crossings(correct_shares: Sequence[float], replicate_scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """`crossing` for every row of (replicates, shares) scores with its own target; inf when not reached."""
    return np.array([
        np.inf if (c := crossing(correct_shares, list(row), float(t))) is None else c
        for row, t in zip(replicate_scores, targets, strict=True)
    ])


def threshold(ratios: Sequence[float], scores: Mapping[float, float], boot: np.ndarray | None,
              fraction: float) -> Threshold:
    """Correct-share crossing of `fraction` x the clean (ratio 0) score on the isotonic fit, with the
    interval of the crossings of the bootstrap replicates `boot` ((replicates, ratios) means)."""
    clean = scores.get(0.0)
    out = Threshold(fraction=fraction)
    if clean is None or len(scores) != len(ratios):
        return out
    shares = [1 - r for r in ratios]
    point = crossing(shares, [scores[r] for r in ratios], fraction * clean)
    out.target, out.correct_share, out.reached = fraction * clean, point, point is not None
    if boot is not None and boot.size:
        cross = crossings(shares, boot, fraction * boot[:, list(ratios).index(0.0)])
        ci = bootstrap.percentile(cross)
        out.ci = tuple(None if not math.isfinite(x) else float(x) for x in ci)  # type: ignore[assignment]
        out.reached_share = float(np.isfinite(cross).mean())
    return out


def _share(t: Threshold) -> str:
    """One kind's threshold: the point estimate, its bootstrap interval and how often it is reached."""
    point = f"{t.correct_share:.2f}" if t.reached else "not reached"
    lo, hi = (f"{x:.2f}" if x is not None else "not reached" for x in t.ci)
    extra = [] if t.ci == (None, None) and t.reached_share is None else [f"95 % interval [{lo}, {hi}]"]
    if t.reached_share is not None:
        extra.append(f"reached in {100 * t.reached_share:.0f} % of bootstrap replicates")
    return point + (f" ({'; '.join(extra)})" if extra else "")


def compare(bench: str, by_kind: Mapping[str, Threshold]) -> str:
    """One sentence comparing the correct-data thresholds of `bench` across kinds of false chain
    (kind -> its threshold; the clean model, and so the target, is shared)."""
    first = next(iter(by_kind.values()))
    if first.target is None:
        return f"{bench}: no correct-data threshold: no clean (CR 0 %) model at every ratio."
    cells = [f"{_share(t)} with {kind} false chains" for kind, t in by_kind.items()]
    return (f"{bench}: the isotonic fit of score vs correct share reaches {first.fraction:g} × the clean score "
            f"({first.target:.3f}) at a correct share of " + " vs ".join(cells) + ".")
