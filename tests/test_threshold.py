"""Correct-data threshold on an isotonic fit: interpolation, 'not reached', non-monotone curves."""

from __future__ import annotations

import math

import numpy as np
import pytest

from faco.analysis.threshold import crossing, crossings, isotonic

SHARES = [0.1, 0.25, 0.5, 0.75, 0.9]
SCORES = [0.2, 0.3, 0.6, 0.8, 0.85]


def test_isotonic_pools_adjacent_violators_by_hand() -> None:
    # .55 > .3 pools to .425; .425 > .35 pools the three to .4; .6 stays
    assert isotonic([0.2, 0.55, 0.3, 0.35, 0.6]) == pytest.approx([0.2, 0.4, 0.4, 0.4, 0.6])
    assert isotonic(SCORES) == pytest.approx(SCORES)  # already monotone: unchanged


def test_monotone_curve_interpolates() -> None:
    # target 0.45 lies between (0.25, 0.3) and (0.5, 0.6): 0.25 + 0.15 * 0.25 / 0.3 = 0.375
    assert crossing(SHARES, SCORES, 0.45) == pytest.approx(0.375)
    assert crossing(SHARES[::-1], SCORES[::-1], 0.45) == pytest.approx(0.375)  # order does not matter
    assert crossing(SHARES, SCORES, 0.6) == pytest.approx(0.5)  # exact grid hit
    assert crossing(SHARES, SCORES, 0.1) == pytest.approx(0.1)  # reached at the first point


def test_not_reached() -> None:
    assert crossing(SHARES, SCORES, 0.9) is None


def test_non_monotone_curve_where_the_first_crossing_rule_was_wrong() -> None:
    # the first-crossing rule said 0 + 0.3/0.35 * 0.25 = 0.214 (a lucky point at share 0.25), though
    # shares 0.5 and 0.75 stay below 0.5; the fit [.2, .4, .4, .4, .6] crosses between 0.75 and 1
    shares, scores = [0, 0.25, 0.5, 0.75, 1.0], [0.2, 0.55, 0.3, 0.35, 0.6]
    assert crossing(shares, scores, 0.5) == pytest.approx(0.75 + (0.5 - 0.4) / 0.2 * 0.25)


def test_crossings_per_replicate_inf_when_not_reached() -> None:
    reps = np.array([SCORES, [0.1, 0.1, 0.1, 0.1, 0.2]])
    got = crossings(SHARES, reps, np.array([0.45, 0.5]))
    assert got[0] == pytest.approx(0.375) and math.isinf(got[1])


def test_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="distinct"):
        crossing([0.5, 0.5], [0.1, 0.2], 0.1)
    with pytest.raises(ValueError, match="equal length"):
        crossing([0.5], [0.1, 0.2], 0.1)
