"""Statistics of a corruption study: drops, chance tests, recovery, AUROC, means.

Pure functions over plain numbers (numpy/scipy only); formulas in docs/analysis.md. The trend and
its uncertainty come from the items (`faco.analysis.bootstrap`), the threshold from an isotonic fit
(`faco.analysis.threshold`).
Ratios are corruption shares in [0, 1]; scores are "higher is better".
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
from scipy import stats as sps

NAN = float("nan")


class BinomialResult(NamedTuple):
    """Observed accuracy, chance accuracy 1/k, and binomial p-values against chance."""

    acc: float
    chance: float
    p_below: float
    p_two_sided: float


def abs_drop(scores_by_ratio: Mapping[float, float]) -> float:
    """The paper's ABS: score at ratio 0.0 minus score at ratio 1.0 (signed; > 0 means a drop)."""
    missing = [r for r in (0.0, 1.0) if r not in scores_by_ratio]
    if missing:
        raise ValueError(f"abs_drop needs scores at ratios 0.0 and 1.0; missing {missing}")
    return float(scores_by_ratio[0.0]) - float(scores_by_ratio[1.0])


def below_chance(correct: int, total: int, k: int) -> BinomialResult:
    """Exact binomial test of `correct` of `total` against chance 1/k (k answer options).

    p_below is the one-sided P(X <= correct) under Binomial(total, 1/k): a small value
    means the model answers correctly less often than guessing, i.e. it learned to lie.
    p_two_sided is scipy's two-sided exact test (sum of outcomes no more likely than observed).
    """
    if k < 2:
        raise ValueError(f"k must be >= 2 answer options, got {k}")
    if total < 1 or not 0 <= correct <= total:
        raise ValueError(f"need 0 <= correct <= total and total >= 1, got {correct}/{total}")
    chance = 1.0 / k
    less = sps.binomtest(correct, total, chance, alternative="less").pvalue
    both = sps.binomtest(correct, total, chance, alternative="two-sided").pvalue
    return BinomialResult(correct / total, chance, float(less), float(both))


def recovery_fraction(clean: float, corrupted: float, recovered: float) -> float:
    """Share of the corruption loss won back: (recovered - corrupted) / (clean - corrupted).

    nan when clean == corrupted (nothing was lost).
    """
    if clean == corrupted:
        return NAN
    return (recovered - corrupted) / (clean - corrupted)


def auroc(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """AUROC of a score (e.g. per-sample training loss) for detecting label True (corrupted).

    The Mann-Whitney U of the positives (scipy's) divided by n_pos * n_neg: the chance that
    a random positive scores higher than a random negative, ties counting 1/2. nan when
    either class is empty.
    """
    s = np.asarray(scores, dtype=float)
    y = np.asarray(labels, dtype=bool)
    if s.shape != y.shape or s.ndim != 1:
        raise ValueError(f"scores and labels must be 1-d and equal length, got {s.shape} and {y.shape}")
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return NAN
    return float(sps.mannwhitneyu(s[y], s[~y]).statistic) / (n_pos * n_neg)


def domain_means(scores: Mapping[str, float], domains: Mapping[str, str]) -> dict[str, float]:
    """Unweighted mean score per domain over the benchmarks in `scores` (every one needs a domain)."""
    unknown = sorted(set(scores) - set(domains))
    if unknown:
        raise ValueError(f"no domain for benchmarks {unknown}")
    groups: dict[str, list[float]] = {}
    for bench, score in scores.items():
        groups.setdefault(domains[bench], []).append(float(score))
    return {d: float(np.mean(v)) for d, v in groups.items()}


def mean_stderr(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error (sample std with ddof=1 over sqrt(n)); stderr is nan for n = 1."""
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        raise ValueError("mean_stderr needs at least one value")
    if v.size == 1:
        return float(v[0]), NAN
    return float(v.mean()), float(v.std(ddof=1) / math.sqrt(v.size))
