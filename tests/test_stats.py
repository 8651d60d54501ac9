"""Statistics against hand-computed values on tiny inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from faco.analysis.stats import (
    abs_drop,
    auroc,
    below_chance,
    domain_means,
    mean_stderr,
    recovery_fraction,
)


def _binom_pmf(i: int, n: int, q: float) -> float:
    return math.comb(n, i) * q**i * (1 - q) ** (n - i)


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


def test_auroc_is_scipys_mann_whitney_u_over_pairs() -> None:
    rng = np.random.default_rng(3)
    scores = list(np.round(rng.normal(size=40), 1))  # rounded: ties
    labels = [bool(x) for x in rng.integers(0, 2, size=40)]
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    u = sps.mannwhitneyu(pos, neg).statistic
    assert auroc(scores, labels) == pytest.approx(u / (len(pos) * len(neg)))
