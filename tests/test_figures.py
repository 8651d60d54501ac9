"""Figures: each writes a valid PNG of the expected size; degenerate inputs do not crash."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from matplotlib import colors as mcolors
from matplotlib import image as mimage

from faco.analysis import figures as F

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
RATIOS = [0.0, 0.25, 0.5, 0.75, 1.0]
NAN = float("nan")


def _png(path: Path, width: int, height: int) -> np.ndarray:
    """Assert `path` is a PNG of width x height pixels (figsize inches x 150 dpi); return pixels."""
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    img = mimage.imread(path)
    assert img.shape[:2] == (height, width)
    return img


def _count(img: np.ndarray, color: str) -> int:
    """Pixels within 2% of `color`."""
    rgb = np.array(mcolors.to_rgb(color))
    return int((np.abs(img[..., :3] - rgb).max(axis=-1) < 0.02).sum())


def _table(n: int) -> dict[str, dict[float, float | None]]:
    return {f"bench_{i}": {r: 0.7 - 0.4 * r + 0.01 * i for r in RATIOS} for i in range(n)}


# ---------- Fig. 2 ----------


@pytest.mark.parametrize(
    ("n", "width", "height"),
    [(16, 1920, 1650), (5, 1920, 870), (1, 480, 480)],  # 4 cols x 3.2in; rows x 2.6in + 0.6in
)
def test_score_vs_ratio_grid_size(tmp_path: Path, n: int, width: int, height: int) -> None:
    chance = {f"bench_{i}": 0.25 if i % 2 else None for i in range(n)}
    out = F.score_vs_ratio(_table(n), tmp_path / "sub" / "fig2.png", chance)
    assert out == tmp_path / "sub" / "fig2.png"
    _png(out, width, height)


def test_score_vs_ratio_degenerate(tmp_path: Path) -> None:
    table: dict[str, dict[float, float | None]] = {
        "single": {0.5: 0.4},
        "holes": {0.0: 0.6, 0.5: None, 1.0: NAN},
        "empty": {},
    }
    _png(F.score_vs_ratio(table, tmp_path / "a.png", {"single": NAN}), 1440, 480)
    _png(F.score_vs_ratio({}, tmp_path / "b.png"), 480, 480)


# ---------- Fig. 3 ----------


def _step_losses() -> dict[float, list[tuple[int, float]]]:
    return {r: [(s, 2.0 * math.exp(-s / 50) + 0.3 + 0.3 * r) for s in range(0, 300, 10)] for r in RATIOS}


def _sample_losses() -> dict[float, dict[int, tuple[float | None, float | None]]]:
    return {r: {1: (0.9, 1.2), 3: (0.4 if r < 1 else NAN, 0.8 if r > 0 else None)} for r in RATIOS}


def test_loss_curves(tmp_path: Path) -> None:
    _png(F.loss_curves(_step_losses(), _sample_losses(), tmp_path / "fig3.png"), 1800, 690)


def test_loss_curves_degenerate(tmp_path: Path) -> None:
    _png(F.loss_curves({}, {}, tmp_path / "empty.png"), 1800, 690)
    one = F.loss_curves({0.5: [(0, 1.0)]}, {0.5: {}, 1.0: {2: (None, 0.9)}}, tmp_path / "one.png")
    _png(one, 1800, 690)


# ---------- Fig. 4 ----------


def test_per_subject_vs_chance(tmp_path: Path) -> None:
    subjects = [f"subject_{i:02d}" for i in range(57)]
    acc: dict[float, dict[str, float | None]] = {
        r: {s: 0.6 - 0.5 * r + 0.002 * i for i, s in enumerate(subjects)} for r in (0.0, 0.5, 1.0)
    }
    acc[1.0]["subject_03"] = None
    img = _png(F.per_subject_vs_chance(acc, 0.25, tmp_path / "fig4.png"), 1200, 1950)  # 0.2 * 57 + 1.6 in
    assert _count(img, "red") > 1000  # the chance line spans the plot, not just the legend


def test_per_subject_vs_chance_degenerate(tmp_path: Path) -> None:
    _png(F.per_subject_vs_chance({}, 0.25, tmp_path / "empty.png"), 1200, 450)  # min height 3 in
    _png(F.per_subject_vs_chance({1.0: {"a": 0.1, "b": NAN}}, 0.25, tmp_path / "one.png"), 1200, 450)


# ---------- Fig. 5 ----------


def test_score_vs_epoch(tmp_path: Path) -> None:
    avg: dict[float, dict[int, float | None]] = {
        r: {e: 0.5 - 0.05 * r * e for e in (1, 2, 3)} for r in RATIOS
    }
    avg[0.5][2] = None
    _png(F.score_vs_epoch(avg, tmp_path / "fig5.png"), 960, 660)
    _png(F.score_vs_epoch({}, tmp_path / "empty.png"), 960, 660)
    _png(F.score_vs_epoch({1.0: {1: 0.3}}, tmp_path / "one.png"), 960, 660)


# ---------- Fig. 6 ----------


Scores = dict[str, float | None]


def _recovery(n: int, share: float) -> tuple[Scores, Scores, Scores]:
    clean: Scores = {f"b{i}": 0.7 for i in range(n)}
    corrupted: Scores = {f"b{i}": 0.2 for i in range(n)}
    recovered: Scores = {f"b{i}": 0.2 + 0.5 * share for i in range(n)}
    return clean, corrupted, recovered


def test_recovery_bars_size_skips_incomplete_benchmarks(tmp_path: Path) -> None:
    clean, corrupted, recovered = _recovery(10, 0.5)
    _png(F.recovery_bars(clean, corrupted, recovered, tmp_path / "all.png"), 1275, 750)  # 0.6 * 10 + 2.5 in
    recovered["b3"] = None
    del corrupted["b4"]
    _png(F.recovery_bars(clean, corrupted, recovered, tmp_path / "some.png"), 1095, 750)  # 8 bars


def test_recovery_bars_colours_follow_margins(tmp_path: Path) -> None:
    full = mimage.imread(F.recovery_bars(*_recovery(6, 1.0), tmp_path / "full.png"))
    half = mimage.imread(F.recovery_bars(*_recovery(6, 0.5), tmp_path / "half.png"))
    none = mimage.imread(F.recovery_bars(*_recovery(6, 0.0), tmp_path / "none.png"))
    # full recovery: red only in the legend; none: blue only in the legend
    assert _count(half, F.CORRUPT_COLOR) > 20 * _count(full, F.CORRUPT_COLOR)
    assert _count(half, F.CLEAN_COLOR) > 20 * _count(none, F.CLEAN_COLOR)


def test_recovery_bars_degenerate(tmp_path: Path) -> None:
    _png(F.recovery_bars({}, {}, {}, tmp_path / "empty.png"), 750, 750)
    worse = F.recovery_bars({"a": 0.5}, {"a": 0.6}, {"a": 0.4}, tmp_path / "worse.png", from_ratio=0.75)
    _png(worse, 750, 750)


# ---------- the base model in every figure ----------


def test_base_model_is_drawn(tmp_path: Path) -> None:
    table = _table(2)
    without = mimage.imread(F.score_vs_ratio(table, tmp_path / "a.png"))
    ci = {b: {r: (s - 0.05, s + 0.05) for r, s in row.items() if s is not None} for b, row in table.items()}
    with_base = mimage.imread(F.score_vs_ratio(table, tmp_path / "b.png", base={"bench_0": 0.5, "bench_1": 0.4},
                                               ci=ci))
    assert _count(with_base, F.BASE_COLOR) > 50 * max(1, _count(without, F.BASE_COLOR))
    avg: dict[float, dict[int, float | None]] = {r: {1: 0.5 - 0.1 * r, 2: 0.45 - 0.1 * r} for r in RATIOS}
    epochs = mimage.imread(F.score_vs_epoch(avg, tmp_path / "c.png", base=0.42))
    assert _count(epochs, F.BASE_COLOR) > 100
    acc: dict[float, dict[str, float | None]] = {1.0: {"a": 0.1, "b": 0.2}}
    subjects = mimage.imread(F.per_subject_vs_chance(acc, 0.25, tmp_path / "d.png", base={"a": 0.3, "b": 0.5}))
    assert _count(subjects, F.BASE_COLOR) > 20
    bars = mimage.imread(F.recovery_bars(*_recovery(3, 0.5), tmp_path / "e.png", base={"b0": 0.4, "b1": 0.4}))
    assert _count(bars, F.BASE_COLOR) > 50
