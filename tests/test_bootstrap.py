"""Item-level uncertainty: paired bootstrap and within-item permutation test vs scipy and enumeration."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats as sps

from faco.analysis import bootstrap as B

RATIOS = [0.0, 0.25, 0.5, 0.75, 1.0]


def _noise(n: int = 200, p: float = 0.3, seed: int = 5) -> np.ndarray:
    """Five models answering n items right with the same probability, independently."""
    return (np.random.default_rng(seed).random((n, len(RATIOS))) < p).astype(float)


def test_align_keeps_common_items_in_order() -> None:
    keys, values = B.align([{"a": 1.0, "b": 0.0, "c": 1.0}, {"c": 0.0, "a": 1.0}])
    assert keys == ["a", "c"]
    assert values.tolist() == [[1.0, 1.0], [1.0, 0.0]]


def test_replicate_means_is_a_paired_resample() -> None:
    col = np.arange(10, dtype=float)
    values = np.stack([col, col, col + 1], axis=1)
    reps = B.replicate_means(values, 300, seed=3)
    assert reps.shape == (300, 3)
    # one resample of the items for every model: identical models stay identical, a shift stays a shift
    assert np.array_equal(reps[:, 0], reps[:, 1])
    assert np.allclose(reps[:, 2] - reps[:, 0], 1.0)
    assert np.array_equal(reps, B.replicate_means(values, 300, seed=3))  # seeded


def test_mean_ci_matches_the_normal_approximation() -> None:
    # 60 of 200 right: the bootstrap sd of the mean is sqrt(p(1-p)/n) (ddof 0)
    values = np.array([[1.0] * 60 + [0.0] * 140]).T
    ci = B.percentile(B.replicate_means(values, 4000, seed=0)[:, 0])
    half = 1.959964 * math.sqrt(0.3 * 0.7 / 200)
    assert ci.low == pytest.approx(0.3 - half, abs=0.01)
    assert ci.high == pytest.approx(0.3 + half, abs=0.01)


def test_trend_ci_matches_scipy_paired_percentile_bootstrap() -> None:
    rng = np.random.default_rng(11)
    values = (rng.random((150, 5)) < np.array([0.55, 0.5, 0.45, 0.4, 0.35])).astype(float)
    ours = B.trend(RATIOS, values, 3000, seed=0)

    def r_of_means(*cols: np.ndarray, axis: int = -1) -> np.ndarray:
        means = np.stack([c.mean(axis=axis) for c in cols], axis=-1)
        return B.pearson_rows(RATIOS, means.reshape(-1, len(RATIOS))).reshape(means.shape[:-1])

    ref = sps.bootstrap(tuple(values.T), r_of_means, paired=True, vectorized=True, n_resamples=3000,
                        method="percentile", random_state=np.random.default_rng(1)).confidence_interval
    assert ours.r == pytest.approx(float(r_of_means(*values.T)))
    assert ours.ci.low == pytest.approx(ref.low, abs=0.05)
    assert ours.ci.high == pytest.approx(ref.high, abs=0.05)


def test_slopes_match_scipy_linregress() -> None:
    ys = np.array([[0.6, 0.5, 0.5, 0.3, 0.2]])
    assert B.slopes(RATIOS, ys)[0] == pytest.approx(sps.linregress(RATIOS, ys[0]).slope)


def test_pearson_rows_matches_scipy() -> None:
    ys = np.array([[0.6, 0.5, 0.5, 0.3, 0.2], [0.1, 0.3, 0.2, 0.4, 0.9]])
    got = B.pearson_rows(RATIOS, ys)
    for row, r in zip(ys, got, strict=True):
        assert r == pytest.approx(sps.pearsonr(RATIOS, row).statistic)
    assert math.isnan(B.pearson_rows(RATIOS, np.full((1, 5), 0.4))[0])


def test_permutation_p_matches_exhaustive_enumeration() -> None:
    # 2 items x 3 models: all 3! x 3! = 36 within-item relabelings are equally likely under the null
    values = np.array([[1.0, 0.5, 0.0], [0.8, 0.9, 0.1]])
    ratios = [0.0, 0.5, 1.0]
    def slope(means: np.ndarray) -> float:  # least squares by hand: sum(dx y) / sum(dx^2), dx = -.5, 0, .5
        return float((-0.5 * means[0] + 0.5 * means[2]) / 0.5)

    observed = abs(slope(values.mean(axis=0)))
    perms = list(itertools.permutations(range(3)))
    hits = 0
    for p0, p1 in itertools.product(perms, perms):
        means = (values[0, list(p0)] + values[1, list(p1)]) / 2
        hits += abs(slope(means)) >= observed - 1e-12
    exact = hits / 36
    assert B.permutation_p(ratios, values, 20000, seed=0) == pytest.approx(exact, abs=0.015)


def test_noise_level_differences_give_a_ci_containing_zero_and_no_trend() -> None:
    values = _noise()
    t = B.trend(RATIOS, values, 1000, seed=0)
    assert t.ci.low < 0 < t.ci.high
    assert t.p > 0.05
    # the five-point bootstrap of the old analysis gave [-1, 1] here; items give a finite interval
    assert (t.ci.low, t.ci.high) != (-1.0, 1.0)


def test_a_real_drop_is_detected() -> None:
    rng = np.random.default_rng(2)
    values = (rng.random((100, 5)) < np.array([0.6, 0.5, 0.4, 0.3, 0.2])).astype(float)
    t = B.trend(RATIOS, values, 1000, seed=0)
    assert t.r < -0.9 and t.ci.high < 0
    assert t.p == pytest.approx(1 / 1001)  # no relabeling reaches the slope; p is never 0


def test_constant_means_have_no_trend_and_no_items_no_test() -> None:
    values = np.array([[1.0, 0.0, 1.0, 0.0, 1.0], [0.0, 1.0, 0.0, 1.0, 0.0]])
    assert B.permutation_p(RATIOS, values, 100, seed=0) == 1.0
    empty = B.trend(RATIOS, np.zeros((0, 5)), 100, seed=0)
    assert empty.n_items == 0 and math.isnan(empty.p) and math.isnan(empty.ci.low)
    # equal means from different items: r undefined, but replicates vary (constant ones count as r = 0)
    mixed = B.trend(RATIOS, np.array([[1.0, 1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0, 1.0]]), 200, seed=0)
    assert math.isnan(mixed.r) and mixed.ci.low < 0 < mixed.ci.high and mixed.p == 1.0
    # every model scored every item alike: nothing to resample, so no interval (not a measured [0, 0])
    alike = B.trend(RATIOS, np.repeat([[1.0], [0.0], [1.0]], 5, axis=1), 200, seed=0)
    assert math.isnan(alike.r) and math.isnan(alike.ci.low) and math.isnan(alike.ci.high) and alike.p == 1.0


def test_percentile_ignores_nan_and_keeps_inf() -> None:
    ci = B.percentile(np.array([0.1, np.nan, 0.3, np.inf, np.inf]), level=0.5)
    assert ci.low == pytest.approx(np.percentile([0.1, 0.3, np.inf, np.inf], 25))
    assert ci.high == math.inf
    assert math.isnan(B.percentile(np.array([np.nan])).low)


def test_one_differing_item_does_not_make_a_narrow_r_interval() -> None:
    # 12 items, all models alike except one item one model gets right: r of the means is 0.35, but the
    # replicates that miss that item have no trend at all, so the interval must reach 0
    values = np.zeros((12, 5))
    values[:3] = 1.0
    values[5, 1] = 1.0
    t = B.trend(RATIOS, values, 500, seed=0)
    assert t.r == pytest.approx(sps.pearsonr(RATIOS, values.mean(axis=0)).statistic)
    assert t.ci.low == pytest.approx(t.r) and t.ci.high == 0.0  # not [r, r]
    assert t.p > 0.05


def test_permutation_p_matches_scipy_within_item_permutation_test() -> None:
    """scipy's permutation_test with permutation_type="samples" permutes each item's values across the
    models (exactly, for 3 items x 3 models: 6^3 relabelings; the grid is symmetric, so its two-sided p,
    twice the smaller tail, is faco's |slope| tail); faco's Monte Carlo p agrees with it."""
    values = np.array([[1.0, 0.6, 0.0], [0.8, 0.9, 0.1], [0.7, 0.2, 0.3]])
    ratios = [0.0, 0.5, 1.0]
    dx = np.array(ratios) - np.mean(ratios)

    def slope(*models: np.ndarray, axis: int = -1) -> np.ndarray:
        return sum(d * m.mean(axis=axis) for d, m in zip(dx, models, strict=True)) / float(dx @ dx)

    ref = sps.permutation_test(tuple(values.T), slope, permutation_type="samples", vectorized=True,
                               n_resamples=10**6, alternative="two-sided")
    assert B.permutation_p(ratios, values, 20000, seed=0) == pytest.approx(ref.pvalue, abs=0.015)
