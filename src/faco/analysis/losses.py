"""Training loss (F3, Fig. 3) and corruption detection from the grid models' loss logs.

F3 is the trend of the mean per-sample loss after the last epoch with the ratio: training examples
are paired by id across ratios, so the paired bootstrap and the permutation test of the benchmark
items apply (`bootstrap.trend`). The per-sample loss is also the detector every study has (`grid_loss`):
its AUROC, average precision and precision at the corruption rate for the corrupted flag, with bootstrap
intervals over samples (`faco.analysis.detection`), say how well it separates corrupted from clean samples.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from faco.analysis import bootstrap
from faco.analysis.detection import GRID_LOSS, detection
from faco.analysis.inputs import TrainingLog
from faco.analysis.schema import Detection, RatioValue, TrainLoss
from faco.analysis.table import verdict
from faco.config import AnalyzeConfig


@dataclass
class Losses:
    """What the figures draw (ratio -> step losses; ratio -> epoch -> clean and corrupted mean loss)
    and what the analysis reports (how well the per-sample loss detects the corrupted samples, per ratio
    and epoch; the final-loss trend)."""

    steps: dict[float, list[tuple[int, float]]]
    samples: dict[float, dict[int, tuple[float, float]]]
    detection: list[Detection]
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
    """Step losses, per-sample clean/corrupted means, the loss detector's benchmark and the final-loss trend."""
    samples: dict[float, dict[int, tuple[float, float]]] = {}
    found: list[Detection] = []
    last: dict[float, dict[str, float]] = {}
    for g in logs:
        by_epoch = _by_epoch(g.samples)
        samples[g.ratio] = {epoch: _means(rows) for epoch, rows in by_epoch.items()}
        if by_epoch:
            found += _detection(g.ratio, by_epoch, cfg)
            last[g.ratio] = {str(x["id"]): float(x["loss"]) for x in by_epoch[max(by_epoch)]}
    return Losses(steps={g.ratio: g.steps for g in logs}, samples=samples,
                  detection=sorted(found, key=lambda d: (d.ratio or 0.0, d.epoch is None, d.epoch or 0)),
                  final=final_loss(logs, last, cfg, alpha))


def _detection(ratio: float, by_epoch: dict[int, list[dict[str, Any]]], cfg: AnalyzeConfig) -> list[Detection]:
    """How well the grid model's per-sample loss finds the corrupted samples of its split after each
    epoch, where the split has both classes (its last epoch is the end of training)."""
    out = []
    for epoch, rows in sorted(by_epoch.items()):
        flags = [bool(x["is_corrupted"]) for x in rows]
        if all(flags) or not any(flags):
            continue
        out.append(detection([float(x["loss"]) for x in rows], flags, cfg.bootstrap, cfg.seed, GRID_LOSS, ratio, epoch))
    return out
