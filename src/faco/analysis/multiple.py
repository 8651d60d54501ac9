"""Corrections for testing many hypotheses at once (e.g. 57 MMLU subjects below chance)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def holm(p: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (controls the family-wise error rate).

    With the m p-values sorted ascending, p_(1) <= ... <= p_(m), the adjusted value of the i-th is
    max over j <= i of min(1, (m - j + 1) p_(j)); returned in the input order.
    """
    v = np.asarray(p, dtype=float)
    m = v.size
    order = np.argsort(v, kind="stable")
    stepped = np.minimum(1.0, (m - np.arange(m)) * v[order])
    out = np.empty(m)
    out[order] = np.maximum.accumulate(stepped)
    return [float(x) for x in out]


def benjamini_hochberg(p: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (q-values; control the false discovery rate).

    Sorted ascending, the i-th gets min over j >= i of min(1, m p_(j) / j); returned in input order.
    """
    v = np.asarray(p, dtype=float)
    m = v.size
    order = np.argsort(v, kind="stable")
    scaled = np.minimum(1.0, m * v[order] / np.arange(1, m + 1))
    out = np.empty(m)
    out[order] = np.minimum.accumulate(scaled[::-1])[::-1]
    return [float(x) for x in out]
