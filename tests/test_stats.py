"""Statistics against hand-computed values on tiny inputs."""

from __future__ import annotations

import math
import warnings

import pytest

from faco.analysis.stats import (
    abs_drop,
    auroc,
    below_chance,
    domain_means,
    mean_stderr,
    pearson,
    recovery_fraction,
    threshold,
)


def _binom_pmf(i: int, n: int, q: float) -> float:
    return math.comb(n, i) * q**i * (1 - q) ** (n - i)


# ---------- pearson ----------


def test_pearson_n4_r_and_p_by_hand() -> None:
    # dx = [-1.5,-.5,.5,1.5], dy = [-1.75,.25,-.75,2.25]: Sxy = 5.5, Sxx = 5, Syy = 8.75
    res = pearson([0, 1, 2, 3], [1, 3, 2, 5], n_boot=200)
    r = 5.5 / math.sqrt(5 * 8.75)
    assert res.r == pytest.approx(r)
    # df = 2: the t CDF is closed form and the two-sided p reduces to 1 - |r|
    assert res.p == pytest.approx(1 - r)
    assert res.n == 4
    assert res.ci_low <= res.r <= res.ci_high


def test_pearson_n3_p_by_hand() -> None:
    # r = -0.5; df = 1 (Cauchy): p = 1 - (2/pi) asin(|r|) = 1 - (2/pi)(pi/6) = 2/3
    res = pearson([0.0, 0.5, 1.0], [3.0, 1.0, 2.0], n_boot=50)
    assert res.r == pytest.approx(-0.5)
    assert res.p == pytest.approx(2 / 3)


def test_pearson_bootstrap_percentiles_match_resample_distribution() -> None:
    # 27 equally likely resamples of 3 points: 3 constant (dropped), 6 with all points
    # (r = -0.5), 18 with two distinct points: r = -1 for 12, +1 for 6.
    # Distribution of valid r: -1 (1/2), -0.5 (1/4), +1 (1/4).
    x, y = [0.0, 0.5, 1.0], [3.0, 1.0, 2.0]
    wide = pearson(x, y, n_boot=4000, seed=1)
    assert (wide.ci_low, wide.ci_high) == pytest.approx((-1.0, 1.0))
    narrow = pearson(x, y, n_boot=4000, seed=1, level=0.2)  # 40th and 60th percentiles
    assert (narrow.ci_low, narrow.ci_high) == pytest.approx((-1.0, -0.5))


def test_pearson_perfect_line_has_degenerate_ci() -> None:
    res = pearson([0, 0.25, 0.5, 0.75, 1], [0.9, 0.8, 0.7, 0.6, 0.5], n_boot=300)
    assert res.r == pytest.approx(-1.0)
    assert res.ci_low == pytest.approx(-1.0)
    assert res.ci_high == pytest.approx(-1.0)


def test_pearson_seeded_bootstrap_is_reproducible() -> None:
    x, y = [0, 0.25, 0.5, 0.75, 1], [0.6, 0.62, 0.5, 0.45, 0.47]
    a, b = pearson(x, y, seed=7), pearson(x, y, seed=7)
    c = pearson(x, y, seed=8)
    assert a == b
    assert (a.ci_low, a.ci_high) != (c.ci_low, c.ci_high)


def test_pearson_constant_scores_is_nan_without_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = pearson([0, 0.5, 1], [0.3, 0.3, 0.3])
    assert all(math.isnan(v) for v in res[:4])
    assert res.n == 3


def test_pearson_small_n() -> None:
    two = pearson([0, 1], [0.5, 0.2])
    assert two.r == pytest.approx(-1.0)
    assert two.p == pytest.approx(1.0)
    assert math.isnan(two.ci_low) and math.isnan(two.ci_high)
    one = pearson([0], [0.5])
    assert math.isnan(one.r) and one.n == 1


def test_pearson_rejects_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="equal length"):
        pearson([0, 1, 2], [1, 2])


# ---------- abs_drop ----------


def test_abs_drop() -> None:
    assert abs_drop({0.0: 0.6, 0.5: 0.4, 1.0: 0.25}) == pytest.approx(0.35)
    assert abs_drop({0: 0.3, 1: 0.5}) == pytest.approx(-0.2)  # int keys, a rise is negative


def test_abs_drop_needs_both_ends() -> None:
    with pytest.raises(ValueError, match=r"missing \[1.0\]"):
        abs_drop({0.0: 0.6, 0.5: 0.4})


# ---------- below_chance ----------


def test_below_chance_one_of_ten_four_options() -> None:
    res = below_chance(1, 10, 4)
    q = 0.25
    assert res.acc == pytest.approx(0.1)
    assert res.chance == pytest.approx(0.25)
    # P(X <= 1) = 0.75^10 + 10 * 0.25 * 0.75^9 = 0.244025...
    assert res.p_below == pytest.approx(0.75**10 + 10 * 0.25 * 0.75**9)
    assert res.p_below == pytest.approx(0.2440252, abs=1e-6)
    # two-sided: pmf(1) = .1877; only pmf(2) = .2816 and pmf(3) = .2503 exceed it
    assert res.p_two_sided == pytest.approx(1 - _binom_pmf(2, 10, q) - _binom_pmf(3, 10, q))


def test_below_chance_far_above_chance_is_not_significant() -> None:
    res = below_chance(8, 10, 4)
    # P(X <= 8) = 1 - P(X = 9) - P(X = 10)
    assert res.p_below == pytest.approx(1 - 10 * 0.25**9 * 0.75 - 0.25**10)


def test_below_chance_zero_correct() -> None:
    assert below_chance(0, 5, 2).p_below == pytest.approx(0.5**5)


@pytest.mark.parametrize(("correct", "total", "k"), [(3, 2, 4), (-1, 5, 4), (0, 0, 4), (1, 5, 1)])
def test_below_chance_rejects_invalid(correct: int, total: int, k: int) -> None:
    with pytest.raises(ValueError):
        below_chance(correct, total, k)


# ---------- recovery_fraction ----------


def test_recovery_fraction() -> None:
    assert recovery_fraction(0.6, 0.3, 0.5) == pytest.approx(2 / 3)
    assert recovery_fraction(0.6, 0.3, 0.2) == pytest.approx(-1 / 3)
    assert math.isnan(recovery_fraction(0.4, 0.4, 0.5))


# ---------- threshold ----------

SHARES = [0.1, 0.25, 0.5, 0.75, 0.9]
SCORES = [0.2, 0.3, 0.6, 0.8, 0.85]


def test_threshold_interpolates_first_crossing() -> None:
    # target 0.45 lies between (0.25, 0.3) and (0.5, 0.6): 0.25 + 0.15 * 0.25 / 0.3 = 0.375
    assert threshold(SHARES, SCORES, 0.9, 0.5) == pytest.approx(0.375)


def test_threshold_input_order_does_not_matter() -> None:
    assert threshold(SHARES[::-1], SCORES[::-1], 0.9, 0.5) == pytest.approx(0.375)


def test_threshold_exact_grid_hit_and_first_point() -> None:
    assert threshold(SHARES, SCORES, 1.0, 0.6) == pytest.approx(0.5)
    assert threshold(SHARES, SCORES, 1.0, 0.1) == pytest.approx(0.1)


def test_threshold_never_reached() -> None:
    assert threshold(SHARES, SCORES, 0.9, 0.95) is None


def test_threshold_non_monotone_takes_first_upward_crossing() -> None:
    # crosses 0.4 between (0, 0.2) and (0.25, 0.5), dips, crosses again: first one wins
    assert threshold([0, 0.25, 0.5, 0.75], [0.2, 0.5, 0.3, 0.6], 0.8, 0.5) == pytest.approx(0.25 * 0.2 / 0.3)


def test_threshold_rejects_duplicate_shares() -> None:
    with pytest.raises(ValueError, match="distinct"):
        threshold([0.5, 0.5], [0.1, 0.2], 1.0, 0.5)


# ---------- auroc ----------


def test_auroc_with_ties_by_hand() -> None:
    # positives 0.4, 0.8 vs negatives 0.1, 0.4: pairs 1 + 0.5 + 1 + 1 = 3.5 of 4
    assert auroc([0.1, 0.4, 0.4, 0.8], [False, True, False, True]) == pytest.approx(0.875)


def test_auroc_extremes() -> None:
    assert auroc([1, 2, 3, 4], [False, False, True, True]) == pytest.approx(1.0)
    assert auroc([1, 2, 3, 4], [True, True, False, False]) == pytest.approx(0.0)
    assert auroc([2, 2, 2], [True, False, True]) == pytest.approx(0.5)


def test_auroc_single_class_is_nan() -> None:
    assert math.isnan(auroc([0.1, 0.2], [True, True]))
    assert math.isnan(auroc([0.1, 0.2], [False, False]))


# ---------- domain_means / mean_stderr ----------


def test_domain_means() -> None:
    got = domain_means({"a": 0.2, "b": 0.4, "c": 0.9}, {"a": "x", "b": "x", "c": "y", "d": "z"})
    assert got == pytest.approx({"x": 0.3, "y": 0.9})


def test_domain_means_unknown_benchmark() -> None:
    with pytest.raises(ValueError, match=r"\['b'\]"):
        domain_means({"a": 0.2, "b": 0.4}, {"a": "x"})


def test_mean_stderr() -> None:
    # var(ddof=1) of [1,2,3,4] = 5/3; stderr = sqrt(5/3) / 2
    mean, se = mean_stderr([1, 2, 3, 4])
    assert mean == pytest.approx(2.5)
    assert se == pytest.approx(math.sqrt(5 / 3) / 2)
    single = mean_stderr([0.7])
    assert single[0] == pytest.approx(0.7) and math.isnan(single[1])
    with pytest.raises(ValueError):
        mean_stderr([])
