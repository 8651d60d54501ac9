"""Training loss (F3, Fig. 3) and corruption detection from the grid models' loss logs.

F3 is the trend of the mean per-sample loss after the last epoch with the ratio: training examples
are paired by id across ratios, so the paired bootstrap and the permutation test of the benchmark
items apply (`bootstrap.trend`). The AUROC of the per-sample loss for the corrupted flag says how
well the loss separates corrupted from clean samples.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from faco.analysis import bootstrap, stats
from faco.analysis.inputs import TrainingLog
from faco.analysis.schema import EpochValue, RatioEpochs, RatioValue, TrainLoss
from faco.analysis.table import verdict
from faco.config import AnalyzeConfig


@dataclass
class Losses:
    """What the figures draw (ratio -> step losses; ratio -> epoch -> clean and corrupted mean loss)
    and what the analysis reports (detection AUROC per ratio and epoch, the final-loss trend)."""

    steps: dict[float, list[tuple[int, float]]]
    samples: dict[float, dict[int, tuple[float, float]]]
    auroc: list[RatioEpochs]
    final: TrainLoss


def _by_epoch(rows: Sequence[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    grouped: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for e in rows:
        grouped[e["epoch"]].append(e)
    return dict(sorted(grouped.items()))


def _means(rows: Sequence[dict[str, Any]]) -> tuple[float, float]:
    clean = [x["loss"] for x in rows if not x["is_corrupted"]]
    bad = [x["loss"] for x in rows if x["is_corrupted"]]
    return float(np.mean(clean)) if clean else math.nan, float(np.mean(bad)) if bad else math.nan


def final_loss(logs: Sequence[TrainingLog], last: dict[float, dict[str, float]], cfg: AnalyzeConfig,
               alpha: float) -> TrainLoss:
    """The last step loss per ratio, and the trend of the last epoch's per-sample losses (`last`:
    ratio -> example id -> loss) with the ratio, paired by example."""
    out = TrainLoss(step_loss=[RatioValue(ratio=g.ratio, value=g.steps[-1][1])
                               for g in sorted(logs, key=lambda g: g.ratio) if g.steps])
    ratios = sorted(last)
    if len(ratios) < 2:
        return out
    keys, values = bootstrap.align([last[r] for r in ratios])
    if not keys:
        return out
    tr = bootstrap.trend(ratios, values, cfg.bootstrap, cfg.seed)
    out.sample_loss = [RatioValue(ratio=r, value=float(values[:, i].mean())) for i, r in enumerate(ratios)]
    out.pearson_r, out.pearson_p = bootstrap.finite(tr.r), bootstrap.finite(tr.p)
    out.pearson_ci = bootstrap.bounds(tr.ci)
    out.n_samples, out.trend = len(keys), verdict(out.pearson_r, out.pearson_p, alpha)
    return out


def losses(logs: Sequence[TrainingLog], cfg: AnalyzeConfig, alpha: float) -> Losses:
    """Step losses, per-sample clean/corrupted means, detection AUROC and the final-loss trend."""
    samples: dict[float, dict[int, tuple[float, float]]] = {}
    auroc: list[RatioEpochs] = []
    last: dict[float, dict[str, float]] = {}
    for g in logs:
        by_epoch = _by_epoch(g.samples)
        samples[g.ratio] = {epoch: _means(rows) for epoch, rows in by_epoch.items()}
        if by_epoch:
            auroc.append(RatioEpochs(ratio=g.ratio, epochs=[
                EpochValue(epoch=epoch, value=bootstrap.finite(stats.auroc(
                    [x["loss"] for x in rows], [bool(x["is_corrupted"]) for x in rows])))
                for epoch, rows in by_epoch.items()]))
            last[g.ratio] = {str(x["id"]): float(x["loss"]) for x in by_epoch[max(by_epoch)]}
    return Losses(steps={g.ratio: g.steps for g in logs}, samples=samples,
                  auroc=sorted(auroc, key=lambda a: a.ratio), final=final_loss(logs, last, cfg, alpha))
