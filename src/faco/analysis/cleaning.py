"""Does cleaning work? The held-out score of four models trained on one corrupted split (docs/audit.md):

- `corrupted`: the split as it is;
- `detector`: the split minus the rows a detector flags most;
- `random`: the split minus as many rows drawn at random;
- `oracle`: the split minus its truly corrupted rows.

Items (benchmark questions) are paired across the four models, so every statistic comes from one
paired bootstrap over items (`faco.analysis.bootstrap`). What oracle removal wins back is the gap
`oracle − corrupted`; an arm recovers `(arm − corrupted) / (oracle − corrupted)` of it. When the gap's
interval contains 0 the oracle wins nothing measurable and the fraction is undefined (None), as a
recovery fraction is (docs/analysis.md).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from faco.analysis import bootstrap
from faco.analysis.schema import Arm, Cleaning, Interval, Recovered

ARMS = ("corrupted", "detector", "random", "oracle")


def _opt(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


def _ci(replicates: np.ndarray) -> Interval:
    iv = bootstrap.percentile(replicates)
    return _opt(iv.low), _opt(iv.high)


def compare(items: Mapping[str, Mapping[str, float]], dropped: Mapping[str, int], n_boot: int, seed: int,
            ratio: float, detector: str, benchmark: str, metric: str) -> Cleaning:
    """The comparison from each arm's per-item values (`items[arm][doc_id]`, every arm of ARMS)."""
    missing = [a for a in ARMS if a not in items]
    if missing:
        raise ValueError(f"cleaning: no items for the arm(s) {', '.join(missing)}")
    keys, values = bootstrap.align([items[a] for a in ARMS])
    if not keys:
        raise ValueError("cleaning: the four models share no item")
    means = values.mean(axis=0)
    reps = bootstrap.replicate_means(values, n_boot, seed)
    arms = [Arm(arm=a, score=float(means[i]), ci=_ci(reps[:, i]), dropped=dropped.get(a))
            for i, a in enumerate(ARMS)]
    gain, gain_reps = means[3] - means[0], reps[:, 3] - reps[:, 0]
    gain_ci = _ci(gain_reps)
    noise = gain_ci[0] is None or gain_ci[1] is None or gain_ci[0] <= 0.0 <= gain_ci[1]
    recovered = []
    for i, a in ((1, "detector"), (2, "random")):
        if noise:
            recovered.append(Recovered(arm=a, fraction=None, ci=(None, None),
                                       reason="oracle ≈ corrupted within noise: nothing measurable to recover"))
            continue
        frac = bootstrap.ratio_of_gaps(reps[:, i] - reps[:, 0], gain_reps)
        recovered.append(Recovered(arm=a, fraction=float((means[i] - means[0]) / gain), ci=_ci(frac)))
    return Cleaning(ratio=ratio, detector=detector, benchmark=benchmark, metric=metric, n_items=len(keys),
                    arms=arms, gain=float(gain), gain_ci=gain_ci, recovered=recovered)


def sentence(c: Cleaning) -> str:
    """The comparison in words, true or false."""
    cr = f"CR {c.ratio * 100:g} %"
    det, rnd = c.recovered
    if det.fraction is None:
        return (f"At {cr}, removing the truly corrupted rows changes {c.benchmark} {c.metric} by "
                f"{c.gain:+.3f} (95 % CI [{_f(c.gain_ci[0])}, {_f(c.gain_ci[1])}]): within noise, so what "
                f"cleaning with {c.detector} recovers is undefined.")
    rand = "undefined" if rnd.fraction is None else f"{rnd.fraction * 100:.0f} % ([{_pct(rnd.ci)}])"
    return (f"At {cr}, cleaning with {c.detector} recovers {det.fraction * 100:.0f} % (95 % CI [{_pct(det.ci)}]) "
            f"of what oracle cleaning recovers on {c.benchmark} ({c.metric}: corrupted {c.arms[0].score:.2f}, "
            f"{c.detector}-cleaned {c.arms[1].score:.2f}, random removal {c.arms[2].score:.2f}, oracle "
            f"{c.arms[3].score:.2f}; {c.n_items} items); random removal of as many rows recovers {rand}.")


def _f(x: float | None) -> str:
    return "–" if x is None else f"{x:.3f}"


def _pct(ci: Interval) -> str:
    return ", ".join("–" if x is None else f"{x * 100:.0f} %" for x in ci)
