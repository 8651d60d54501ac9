"""The detector benchmark's and the cleaning comparison's numbers against scikit-learn, scipy and hand computation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps
from sklearn.metrics import average_precision_score, roc_auc_score

from faco.analysis import cleaning, detection


def _fixture(seed: int = 3, n: int = 120) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.3
    s = np.round(rng.normal(y * 1.2, 1.0), 1)  # rounded: ties across the classes
    return s, y


def test_auroc_and_average_precision_match_scikit_learn_with_ties() -> None:
    s, y = _fixture()
    d = detection.detection(s, y, 0, 0, "x")
    assert d.auroc.value == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert d.average_precision.value == pytest.approx(average_precision_score(y, s), abs=1e-12)
    assert detection.average_precision([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(
        average_precision_score([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]))


def test_precision_at_the_corruption_rate_by_hand() -> None:
    # 2 corrupted of 5: the top 2 by score are 0.9 (corrupted) and 0.7 (clean) -> 1/2
    assert detection.precision_at_k([0.9, 0.7, 0.1, 0.3, 0.2], [1, 0, 1, 0, 0]) == pytest.approx(0.5)
    # a tie at the cut-off: 0.9 is in; one place left for three samples at 0.5, one of them corrupted
    # -> (1 + 1 * 1/3) / 2
    assert detection.precision_at_k([0.9, 0.5, 0.5, 0.5, 0.1], [1, 1, 0, 0, 0]) == pytest.approx(2 / 3)
    assert detection.precision_at_k([0.3, 0.2, 0.1], [1, 1, 1]) == 1.0
    assert math.isnan(detection.precision_at_k([0.3, 0.2], [0, 0]))


def test_intervals_match_scipy_paired_percentile_bootstrap() -> None:
    s, y = _fixture(seed=5, n=150)
    d = detection.detection(s, y, 2000, 0, "x")

    def auc(ss: np.ndarray, yy: np.ndarray, axis: int = -1) -> np.ndarray:  # Mann-Whitney, vectorized
        pos = yy.sum(axis=-1)
        u = (sps.rankdata(ss, axis=-1) * yy).sum(axis=-1) - pos * (pos + 1) / 2
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where((pos > 0) & (pos < yy.shape[-1]), u / (pos * (yy.shape[-1] - pos)), np.nan)

    ref = sps.bootstrap((s, y), auc, paired=True, vectorized=True, n_resamples=2000, method="percentile",
                        random_state=np.random.default_rng(1)).confidence_interval
    assert d.auroc.ci[0] == pytest.approx(ref.low, abs=0.03) and d.auroc.ci[1] == pytest.approx(ref.high, abs=0.03)
    ref = sps.bootstrap((s, y), detection.average_precision, paired=True, vectorized=False, n_resamples=2000,
                        method="percentile", random_state=np.random.default_rng(1)).confidence_interval
    assert d.average_precision.ci[0] == pytest.approx(ref.low, abs=0.03)
    assert d.average_precision.ci[1] == pytest.approx(ref.high, abs=0.03)
    assert d.precision_at_k.ci[0] is not None and d.precision_at_k.ci[0] <= d.precision_at_k.value  # type: ignore[operator]


def test_one_class_has_no_value_and_a_perfect_detector_is_one() -> None:
    d = detection.detection([0.1, 0.2, 0.3], [False, False, False], 100, 0, "x")
    assert d.auroc.value is None and d.auroc.ci == (None, None) and d.corrupted == 0
    perfect = detection.detection([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1], 200, 0, "x")
    assert perfect.auroc.value == 1.0 and perfect.average_precision.value == 1.0
    assert perfect.precision_at_k.value == 1.0 and perfect.auroc.ci == (1.0, 1.0)


def test_best_and_the_sentence_name_the_highest_auroc_against_the_loss_ranking() -> None:
    s, y = _fixture()
    found = [detection.detection(-s, y, 50, 0, "loss", 0.25), detection.detection(s, y, 50, 0, "margin", 0.25),
             detection.detection(s, y, 50, 0, "margin", 0.25, epoch=1)]
    assert detection.best(found) is found[1]
    text = detection.sentence(found)
    assert text is not None and text.startswith("At CR 25 %, the best detector of the")
    assert f"is margin: AUROC {found[1].auroc.value:.2f}" in text
    assert f"the final-loss ranking reaches AUROC {found[0].auroc.value:.2f}" in text
    assert detection.sentence([detection.detection([1.0], [True], 10, 0, "x")]) is None


def _arms(corrupted: list[int], det: list[int], rnd: list[int], oracle: list[int]) -> dict[str, dict[str, float]]:
    return {a: {str(i): float(v) for i, v in enumerate(vals)}
            for a, vals in zip(cleaning.ARMS, (corrupted, det, rnd, oracle), strict=True)}


def test_cleaning_fractions_are_the_share_of_the_oracle_gain() -> None:
    # 20 items: corrupted right on 5, detector-cleaned on 11, random on 6, oracle on 13
    base = [1] * 5 + [0] * 15
    items = _arms(base, [1] * 11 + [0] * 9, [1] * 6 + [0] * 14, [1] * 13 + [0] * 7)
    c = cleaning.compare(items, {"detector": 24, "random": 24, "oracle": 24}, 2000, 0, 0.25, "margin",
                         "heldout", "acc_gen")
    assert [a.score for a in c.arms] == pytest.approx([0.25, 0.55, 0.30, 0.65])
    assert c.gain == pytest.approx(0.40)
    det, rnd = c.recovered
    assert det.fraction == pytest.approx((0.55 - 0.25) / 0.40) and rnd.fraction == pytest.approx(0.05 / 0.40)
    assert det.ci[0] is not None and det.ci[0] < det.fraction < det.ci[1]  # type: ignore[operator]
    assert c.arms[1].dropped == 24 and c.arms[0].dropped is None and c.n_items == 20
    text = cleaning.sentence(c)
    assert "cleaning with margin recovers 75 % (95 % CI [" in text
    assert "random removal of as many rows recovers 12 %" in text


def test_cleaning_is_undefined_when_the_oracle_gains_nothing_measurable() -> None:
    same = [1, 0] * 10
    c = cleaning.compare(_arms(same, same, same, [1, 1] + [1, 0] * 9), {}, 500, 0, 0.5, "loss", "heldout", "acc")
    assert all(r.fraction is None and r.reason for r in c.recovered)
    assert "within noise" in cleaning.sentence(c)
    with pytest.raises(ValueError, match="oracle"):
        cleaning.compare({a: v for a, v in _arms(same, same, same, same).items() if a != "oracle"}, {}, 10, 0, 0.5,
                         "loss", "heldout", "acc")
