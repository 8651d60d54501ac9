"""The paired item matrix of one benchmark and its bootstrap replicates (docs/analysis.md).

One row per item every model has, one column per model: the grid ratios in order, then the base
model and the recovered models where they have per-item results. Every statistic of a row is
computed from the same replicates, so differences between models keep their pairing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from faco.analysis import bootstrap
from faco.analysis.inputs import Evals, items
from faco.config import AnalyzeConfig
from faco.roles import Role

#: a column's model: its role and ratio (a recovery model: the ratio it started from; base: None)
Key = tuple[Role, float | None]


@dataclass
class Columns:
    """Item ids, the (items, models) matrix, its models and its (replicates, models) bootstrap means."""

    keys: list[str]
    values: np.ndarray
    models: list[Key]
    boot: np.ndarray

    def col(self, role: Role, ratio: float | None = None) -> int | None:
        return self.models.index((role, ratio)) if (role, ratio) in self.models else None

    def replicates(self, role: Role, ratio: float | None = None) -> np.ndarray | None:
        """The bootstrap means of one model (None when it has no column or there are no replicates)."""
        i = self.col(role, ratio)
        return None if i is None or self.boot.size == 0 else self.boot[:, i]


def columns(ev: Evals, name: str, metric: str, cfg: AnalyzeConfig) -> Columns | None:
    """Item matrix and its paired bootstrap replicates, or None when a grid model lacks per-item results."""
    per: dict[Key, dict[str, float]] = {(Role.GRID, r): items(ev.grid[r], name, metric) for r in ev.ratios}
    if not per or not all(per.values()):
        return None
    if ev.base is not None and (b := ev.base.items(name, metric)):
        per[(Role.BASE, None)] = b
    for fr, evs in ev.recovery.items():
        if r := items(evs, name, metric):
            per[(Role.RECOVERY, fr)] = r
    keys, values = bootstrap.align(list(per.values()))
    if not keys:
        return None
    return Columns(keys, values, list(per), bootstrap.replicate_means(values, cfg.bootstrap, cfg.seed))
