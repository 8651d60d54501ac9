"""Holm and Benjamini-Hochberg adjusted p-values against hand computation and scipy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import false_discovery_control

from faco.analysis.multiple import benjamini_hochberg, holm

P = [0.01, 0.04, 0.03, 0.005, 0.5]


def test_holm_by_hand() -> None:
    # sorted: .005 .01 .03 .04 .5 with factors 5 4 3 2 1 -> .025 .04 .09 .08 .5, then running max
    assert holm(P) == pytest.approx([0.04, 0.09, 0.09, 0.025, 0.5])


def test_bh_by_hand_and_scipy() -> None:
    # sorted: .005 .01 .03 .04 .5, m p / rank = .025 .025 .05 .05 .5, then running min from the top
    assert benjamini_hochberg(P) == pytest.approx([0.025, 0.05, 0.05, 0.025, 0.5])
    rng = np.random.default_rng(0)
    many = list(rng.random(57) ** 3)  # 57 MMLU subjects
    assert benjamini_hochberg(many) == pytest.approx(list(false_discovery_control(many, method="bh")))


def test_adjusted_never_below_raw_and_capped_at_one() -> None:
    many = list(np.random.default_rng(1).random(57))
    for adj in (holm(many), benjamini_hochberg(many)):
        assert all(a >= p - 1e-15 and a <= 1 for a, p in zip(adj, many, strict=True))
    assert holm([0.3, 0.6]) == pytest.approx([0.6, 0.6])
