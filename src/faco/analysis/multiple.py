"""Corrections for testing many hypotheses at once (e.g. 57 MMLU subjects below chance).

Benjamini–Hochberg is scipy's; Holm is faco's own (scipy has none), checked against hand computation.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import false_discovery_control


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
    """Benjamini-Hochberg adjusted p-values (q-values; control the false discovery rate): scipy's
    `false_discovery_control(p, method="bh")`, i.e. sorted ascending, the i-th gets min over j >= i of
    min(1, m p_(j) / j); returned in input order."""
    if not len(p):
        return []
    return [float(x) for x in false_discovery_control(np.asarray(p, dtype=float), method="bh")]
