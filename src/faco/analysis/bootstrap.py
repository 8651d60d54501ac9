"""Uncertainty from the items: paired item bootstrap and a within-item permutation test.

Every statistic of a study is a function of per-model scores, and every score is a mean over the
same benchmark items. An item matrix `values` has one row per item (doc_id) and one column per
model; the *paired* bootstrap resamples rows, so one resample of items is applied to every model at
once and a difference between models is not blurred by which items happened to be drawn.
Formulas and the choice of tests: docs/analysis.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np

NAN = float("nan")
#: replicates per chunk, so memory stays at chunk x items x models floats
_CHUNK = 128
_BIG = 1e300


class Interval(NamedTuple):
    """A percentile interval; nan bounds when there are no finite replicates."""

    low: float
    high: float


class Trend(NamedTuple):
    """Pearson r of score vs ratio over the grid, its paired item-bootstrap CI and the permutation p
    of the trend (`permutation_p`)."""

    r: float
    ci: Interval
    p: float
    n_items: int


def align(per_model: Sequence[Mapping[str, float]]) -> tuple[list[str], np.ndarray]:
    """The items every model has (sorted by str) and their values as an (items, models) matrix."""
    if not per_model:
        return [], np.zeros((0, 0))
    common = set(per_model[0])
    for m in per_model[1:]:
        common &= set(m)
    keys = sorted(common)
    return keys, np.array([[float(m[k]) for m in per_model] for k in keys]).reshape(len(keys), len(per_model))


def replicate_means(values: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, models) means of `n_boot` paired resamples of the item rows of `values`.

    Each replicate draws `items` row indices with replacement (numpy default_rng(seed)) and takes
    every model's mean over those rows.
    """
    n, m = values.shape
    if n == 0 or n_boot < 1:
        return np.zeros((0, m))
    rng = np.random.default_rng(seed)
    out = np.empty((n_boot, m))
    for start in range(0, n_boot, _CHUNK):
        b = min(_CHUNK, n_boot - start)
        idx = rng.integers(0, n, size=(b, n))
        out[start:start + b] = values[idx].mean(axis=1)
    return out


def pearson_rows(x: Sequence[float], ys: np.ndarray) -> np.ndarray:
    """Pearson r of `x` with every row of `ys` (shape (rows, len(x))); nan where a row is constant."""
    xv = np.asarray(x, dtype=float)
    y = np.atleast_2d(np.asarray(ys, dtype=float))
    dx = xv - xv.mean()
    dy = y - y.mean(axis=1, keepdims=True)
    den = np.sqrt(float(dx @ dx) * (dy * dy).sum(axis=1))
    num = dy @ dx
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(den > 1e-12, num / np.where(den > 1e-12, den, 1.0), NAN)
    return np.clip(r, -1.0, 1.0)


def percentile(replicates: np.ndarray, level: float = 0.95) -> Interval:
    """The (1-level)/2 and (1+level)/2 percentiles of the finite replicates (nan when none).

    +inf replicates (e.g. a threshold "not reached") count as larger than every value, so an
    upper bound can be inf.
    """
    v = np.asarray(replicates, dtype=float)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return Interval(NAN, NAN)
    v = np.where(np.isposinf(v), _BIG, v)  # interpolating towards inf gives inf, not nan
    lo, hi = (math.inf if q > _BIG / 1e100 else float(q)
              for q in np.percentile(v, [100 * (1 - level) / 2, 100 * (1 + level) / 2], method="linear"))
    return Interval(lo, hi)


def finite(x: float | None) -> float | None:
    """`x` as a float, None for a missing or nan value."""
    return None if x is None or math.isnan(x) else float(x)


def bounds(iv: Interval) -> tuple[float | None, float | None]:
    """An interval's bounds as JSON-ready numbers, None where undefined (nan)."""
    return finite(iv.low), finite(iv.high)


def slopes(ratios: Sequence[float], ys: np.ndarray) -> np.ndarray:
    """Least-squares slope of every row of `ys` on `ratios`: sum(dx y) / sum(dx^2)."""
    dx = np.asarray(ratios, dtype=float) - float(np.mean(ratios))
    return np.atleast_2d(np.asarray(ys, dtype=float)) @ dx / float(dx @ dx)


def permutation_p(ratios: Sequence[float], values: np.ndarray, n_perm: int, seed: int) -> float:
    """Two-sided p of the trend of mean score on ratio by permuting model labels within each item.

    Under the null that the ratio does not matter, an item's values are exchangeable across the
    models, so each replicate shuffles every row of `values` independently. The statistic is the
    least-squares slope of the column means on `ratios` (r's numerator: r itself ignores how large
    the differences are, so with five models its permutation distribution has a floor that no
    number of items lowers). p = (1 + #{|slope*| >= |slope|}) / (1 + n_perm), never 0; 1 when every
    model has the same mean; nan without items or with constant ratios.
    """
    n, m = values.shape
    if n == 0 or n_perm < 1 or m != len(ratios) or len(set(ratios)) < 2:
        return NAN
    observed = abs(float(slopes(ratios, values.mean(axis=0))[0]))
    rng = np.random.default_rng(seed)
    hits = 0
    rows = np.arange(n)[None, :, None]
    for start in range(0, n_perm, _CHUNK):
        b = min(_CHUNK, n_perm - start)
        order = rng.permuted(np.broadcast_to(np.arange(m), (b, n, m)), axis=2)
        hits += int(np.sum(np.abs(slopes(ratios, values[rows, order].mean(axis=1))) >= observed - 1e-12))
    return (1 + hits) / (1 + n_perm)


def trend(ratios: Sequence[float], values: np.ndarray, n_boot: int, seed: int, level: float = 0.95) -> Trend:
    """r of the item-mean score vs ratio, its paired bootstrap CI and its permutation p.

    `values`: (items, models) with the models in the order of `ratios`. A replicate in which every
    model has the same mean has no trend and counts as r = 0 (dropping it would leave only the
    replicates that drew the few items that differ, and a falsely narrow interval). When no item
    differs between any two models there is nothing to resample: r and its interval are undefined
    (nan), not a measured [0, 0].
    """
    n = values.shape[0]
    if n == 0:
        return Trend(NAN, Interval(NAN, NAN), NAN, 0)
    r = float(pearson_rows(ratios, values.mean(axis=0))[0])
    p = permutation_p(ratios, values, n_boot, seed + 1)
    if not np.ptp(values, axis=1).any():  # every model answered every item alike
        return Trend(r, Interval(NAN, NAN), p, n)
    boot = np.nan_to_num(pearson_rows(ratios, replicate_means(values, n_boot, seed)), nan=0.0)
    return Trend(r, percentile(boot, level), p, n)


def ratio_of_gaps(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den elementwise, nan where den is 0."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den != 0, num / np.where(den != 0, den, 1.0), NAN)
