"""How well a detector's scores find the corrupted samples (docs/audit.md).

Scores are "higher = more suspicious"; labels say which samples are corrupted. Three numbers, each
with a 95 % percentile interval from a paired bootstrap over samples (numpy `default_rng(seed)`;
a replicate that draws one class only has no value and is left out):

- AUROC: the chance that a random corrupted sample scores above a random clean one, ties ½
  (Mann–Whitney U / (n₊ n₋), as `stats.auroc`);
- average precision: Σₙ (Rₙ − Rₙ₋₁) Pₙ over the distinct score thresholds, highest first (the
  step-wise area under the precision–recall curve, as scikit-learn's `average_precision_score`);
- precision at the true corruption rate: the share of corrupted samples among the k highest scores,
  k = the number of corrupted samples; samples tied at the cut-off count by their share of the
  remaining places (the expected precision when ties are broken at random).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats as sps

from faco.analysis import bootstrap
from faco.analysis.schema import Detection, Metric

Values = Sequence[float] | np.ndarray
Labels = Sequence[bool] | Sequence[int] | np.ndarray


def _arrays(scores: Values, labels: Labels) -> tuple[np.ndarray, np.ndarray]:
    s, y = np.asarray(scores, dtype=float), np.asarray(labels, dtype=bool)
    if s.shape != y.shape or s.ndim != 1:
        raise ValueError(f"scores and labels must be 1-d and equal length, got {s.shape} and {y.shape}")
    return s, y


def auroc(scores: Values, labels: Labels) -> float:
    """Mann–Whitney U of the corrupted samples / (n₊ n₋), ties ½; nan with one class only."""
    s, y = _arrays(scores, labels)
    pos, neg = int(y.sum()), int((~y).sum())
    if not pos or not neg:
        return math.nan
    return float((sps.rankdata(s)[y].sum() - pos * (pos + 1) / 2) / (pos * neg))


def average_precision(scores: Values, labels: Labels) -> float:
    """Step-wise area under the precision–recall curve; nan without a corrupted sample."""
    s, y = _arrays(scores, labels)
    if not y.any():
        return math.nan
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # the last sample of each distinct score
    tps = np.cumsum(y)[last]
    precision = tps / (last + 1)
    recall = tps / tps[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def precision_at_k(scores: Values, labels: Labels, k: int | None = None) -> float:
    """Share of corrupted samples among the `k` highest scores (default: as many as are corrupted),
    ties at the cut-off by their share of the places left; nan when k is 0."""
    s, y = _arrays(scores, labels)
    k = int(y.sum()) if k is None else k
    if k <= 0:
        return math.nan
    cut = np.sort(s)[::-1][k - 1]
    above, at = s > cut, s == cut
    places = k - int(above.sum())
    return float((y[above].sum() + places * y[at].mean()) / k)


#: the detector every study has: the grid model's own per-sample training loss (its `sample_loss.jsonl`)
GRID_LOSS = "grid_loss"


def _metric(value: float, replicates: list[float]) -> Metric:
    ci = bootstrap.percentile(np.asarray(replicates, dtype=float))
    return Metric(value=None if math.isnan(value) else value,
                  ci=(None if math.isnan(ci.low) else ci.low, None if math.isnan(ci.high) else ci.high))


def detection(scores: Values, labels: Labels, n_boot: int, seed: int, detector: str,
              ratio: float | None = None, epoch: int | None = None, kind: str | None = None) -> Detection:
    """AUROC, average precision and precision at the corruption rate, each with its bootstrap interval."""
    s, y = _arrays(scores, labels)
    rng = np.random.default_rng(seed)
    reps: dict[str, list[float]] = {"auroc": [], "ap": [], "pk": []}
    for _ in range(n_boot):
        idx = rng.integers(0, len(s), len(s))
        bs, by = s[idx], y[idx]
        if by.all() or not by.any():
            continue
        reps["auroc"].append(auroc(bs, by))
        reps["ap"].append(average_precision(bs, by))
        reps["pk"].append(precision_at_k(bs, by))
    two = 0 < y.sum() < len(y)
    return Detection(
        detector=detector, ratio=ratio, kind=kind, epoch=epoch, n=len(s), corrupted=int(y.sum()),
        auroc=_metric(auroc(s, y) if two else math.nan, reps["auroc"]),
        average_precision=_metric(average_precision(s, y) if two else math.nan, reps["ap"]),
        precision_at_k=_metric(precision_at_k(s, y) if two else math.nan, reps["pk"]))


def best(found: Sequence[Detection]) -> Detection | None:
    """The detector with the highest AUROC (then average precision); None when none has a value."""
    scored = [d for d in found if d.auroc.value is not None]
    if not scored:
        return None
    return max(scored, key=lambda d: (d.auroc.value or 0.0, d.average_precision.value or 0.0))


def finals(found: Sequence[Detection]) -> list[Detection]:
    """Each detector's row at the end of training: epoch None, else its last epoch."""
    last: dict[tuple[str, str | None, float | None], Detection] = {}
    for d in found:
        key = (d.detector, d.kind, d.ratio)
        have = last.get(key)
        if have is None or (have.epoch is not None and (d.epoch is None or d.epoch > have.epoch)):
            last[key] = d
    return list(last.values())


def _iv(m: Metric) -> str:
    lo, hi = m.ci
    return "–" if lo is None or hi is None else f"[{lo:.2f}, {hi:.2f}]"


def sentence(found: Sequence[Detection], baseline: str = "loss") -> str | None:
    """The best detector (final epoch) in words, against the final-loss ranking; None without labels."""
    final = finals(found)
    top = best(final)
    if top is None or top.auroc.value is None:
        return None
    where = "" if top.ratio is None else f"At CR {top.ratio * 100:g} %{f' ({top.kind})' if top.kind else ''}, "
    text = (f"{where}the best detector of the {top.corrupted} corrupted of {top.n} samples is {top.detector}: "
            f"AUROC {top.auroc.value:.2f} (95 % CI {_iv(top.auroc)}), average precision "
            f"{_f(top.average_precision.value)} ({_iv(top.average_precision)}), precision at the corruption rate "
            f"{_f(top.precision_at_k.value)} ({_iv(top.precision_at_k)})")
    base = next((d for name in (baseline, GRID_LOSS) for d in final
                 if d.detector == name and d.ratio == top.ratio and d.kind == top.kind), None)
    if base is not None and base.detector != top.detector and base.auroc.value is not None:
        text += f"; the final-loss ranking reaches AUROC {base.auroc.value:.2f} ({_iv(base.auroc)})"
    return text + "."


def _f(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f}"
