"""The FACO paper's figures 2-6 as PNG files (matplotlib, no display needed).

Ratios are corruption shares in [0, 1] and are drawn as percentages. Missing values
(None or nan) are skipped rather than drawn; an empty panel says "no data".
Every function writes `out` (creating its folder) and returns it. Figures are built
on `matplotlib.figure.Figure` directly and rendered by Agg: no pyplot state, no display.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TypeGuard, TypeVar

import matplotlib
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

DPI = 150
CLEAN_COLOR = "tab:blue"
CORRUPT_COLOR = "tab:red"
CHANCE_COLOR = "0.35"
BASE_COLOR = "tab:green"

K = TypeVar("K", int, float, str)


def _ok(v: float | None) -> TypeGuard[float]:
    return v is not None and not math.isnan(v)


def _present(values: Mapping[K, float | None]) -> list[tuple[K, float]]:
    """The (key, value) pairs with a value, sorted by key."""
    return sorted((k, float(v)) for k, v in values.items() if _ok(v))


def _pct(ratio: float) -> str:
    return f"CR {100 * ratio:g}%"


def _ratio_colors(ratios: Sequence[float]) -> dict[float, tuple[float, float, float, float]]:
    """One colour per ratio on a fixed scale: 0 % dark blue ... 100 % yellow."""
    cmap = matplotlib.colormaps["viridis"]
    return {r: cmap(0.9 * min(max(r, 0.0), 1.0)) for r in ratios}


def _title(name: str) -> str:
    return "\n".join(textwrap.wrap(name.replace("_", " "), 30)) or name


def _save(fig: Figure, out: Path | str) -> Path:
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, format="png")
    return path


def _no_data(ax: Axes) -> None:
    ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="0.5")


def score_vs_ratio(
    table: Mapping[str, Mapping[float, float | None]],
    out: Path | str,
    chance: Mapping[str, float | None] | None = None,
    base: Mapping[str, float | None] | None = None,
    ci: Mapping[str, Mapping[float, tuple[float | None, float | None]]] | None = None,
) -> Path:
    """Fig. 2: one panel per benchmark of score vs corruption ratio (%), chance dashed where known,
    the untrained base model dotted where given, and item-bootstrap CIs as error bars where given."""
    names = list(table) or ["(no benchmarks)"]
    ncols = min(4, len(names))
    nrows = math.ceil(len(names) / ncols)
    fig = Figure(figsize=(3.2 * ncols, 2.6 * nrows + 0.6), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=True)
    drew_chance = drew_base = drew_ci = False
    for i, ax in enumerate(axes.flat):
        if i >= len(names):
            ax.set_visible(False)
            continue
        name = names[i]
        pts = _present(table.get(name, {}))
        if pts:
            xs = [100 * r for r, _ in pts]
            ax.plot(xs, [s for _, s in pts], marker="o", color=CLEAN_COLOR)
            bounds = (ci or {}).get(name, {})
            bars = [(100 * r, s, bounds[r]) for r, s in pts if r in bounds and _ok(bounds[r][0]) and _ok(bounds[r][1])]
            if bars:
                ax.errorbar([x for x, _, _ in bars], [s for _, s, _ in bars],
                            yerr=[[max(0.0, s - b[0]) for _, s, b in bars],  # type: ignore[operator]
                                  [max(0.0, b[1] - s) for _, s, b in bars]],  # type: ignore[operator]
                            fmt="none", ecolor=CLEAN_COLOR, alpha=0.6, capsize=2)
                drew_ci = True
        else:
            _no_data(ax)
        base_level = (base or {}).get(name)
        if _ok(base_level):
            ax.axhline(base_level, color=BASE_COLOR, linestyle=":", linewidth=1.5)
            drew_base = True
        level = (chance or {}).get(name)
        if _ok(level):
            ax.axhline(level, color=CHANCE_COLOR, linestyle="--", linewidth=1.2)
            drew_chance = True
        ax.set_title(_title(name), fontsize=9)
        ax.set_xlim(-5, 105)
        ax.set_xticks([0, 25, 50, 75, 100])
        ax.grid(alpha=0.3)
        if i % ncols == 0:
            ax.set_ylabel("score")
        if i >= len(names) - ncols:
            ax.set_xlabel("corruption ratio (%)")
            ax.xaxis.set_tick_params(labelbottom=True)
    handles = [Line2D([], [], marker="o", color=CLEAN_COLOR, label="score (95% item-bootstrap CI)" if drew_ci
                      else "score")]
    if drew_base:
        handles.append(Line2D([], [], color=BASE_COLOR, linestyle=":", linewidth=1.5, label="base model"))
    if drew_chance:
        handles.append(Line2D([], [], color=CHANCE_COLOR, linestyle="--", linewidth=1.2, label="chance"))
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), frameon=False)
    return _save(fig, out)


def loss_curves(
    step_losses: Mapping[float, Sequence[tuple[int, float]]],
    sample_losses: Mapping[float, Mapping[int, tuple[float | None, float | None]]],
    out: Path | str,
) -> Path:
    """Fig. 3: training loss per step for each ratio (left); last-epoch mean per-sample
    loss of clean vs corrupted samples for each ratio (right)."""
    fig = Figure(figsize=(12, 4.6), layout="constrained")
    left, right = fig.subplots(1, 2, width_ratios=[3, 2])
    colors = _ratio_colors(sorted(set(step_losses) | set(sample_losses)))
    for ratio in sorted(step_losses):
        pts = sorted((s, v) for s, v in step_losses[ratio] if _ok(v))
        if pts:
            left.plot(
                [s for s, _ in pts],
                [v for _, v in pts],
                color=colors[ratio],
                label=_pct(ratio),
                linewidth=1.2,
                marker="o" if len(pts) == 1 else None,
            )
    if left.lines:
        left.legend(title="corruption", fontsize=8, loc="upper right")
    else:
        _no_data(left)
    left.set(xlabel="training step", ylabel="training loss", title="Training loss per step")
    left.grid(alpha=0.3)

    ratios = sorted(r for r in sample_losses if sample_losses[r])
    width = 0.38
    epochs: set[int] = set()
    for i, ratio in enumerate(ratios):
        epoch = max(sample_losses[ratio])
        epochs.add(epoch)
        clean, corrupted = sample_losses[ratio][epoch]
        for dx, val, color in ((-width / 2, clean, CLEAN_COLOR), (width / 2, corrupted, CORRUPT_COLOR)):
            if _ok(val):
                right.bar(i + dx, val, width, color=color)
    right.set_xticks(range(len(ratios)), [_pct(r) for r in ratios])
    if ratios:
        right.legend(
            handles=[
                Patch(color=CLEAN_COLOR, label="clean samples"),
                Patch(color=CORRUPT_COLOR, label="corrupted samples"),
            ],
            fontsize=8,
            loc="upper left",
        )
        right.margins(y=0.25)
    else:
        _no_data(right)
    ep = f"epoch {epochs.pop()}" if len(epochs) == 1 else "last epoch"
    right.set(ylabel="mean per-sample loss", title=f"Per-sample loss, {ep}")
    right.grid(alpha=0.3, axis="y")
    return _save(fig, out)


def per_subject_vs_chance(
    subject_acc: Mapping[float, Mapping[str, float | None]],
    chance: float,
    out: Path | str,
    base: Mapping[str, float | None] | None = None,
) -> Path:
    """Fig. 4: per-subject accuracy (one dot per ratio, a green cross for the base model) with a
    red chance line.

    Subjects are sorted by accuracy at the highest ratio (the most corrupted model),
    highest on top, subjects it lacks at the bottom; the legend counts subjects below
    chance for each ratio.
    """
    ratios = sorted(subject_acc)
    subjects = sorted({s for accs in [*subject_acc.values(), base or {}] for s in accs})
    present = dict(_present(subject_acc[ratios[-1]])) if ratios else {}
    subjects.sort(key=lambda s: (s in present, present.get(s, 0.0)))
    height = max(3.0, 0.2 * len(subjects) + 1.6)
    fig = Figure(figsize=(8, height), layout="constrained")
    ax = fig.subplots()
    colors = _ratio_colors(ratios)
    pos = {s: i for i, s in enumerate(subjects)}  # lowest at the bottom, highest on top
    for ratio in ratios:
        pts = [(v, pos[s]) for s, v in _present(subject_acc[ratio])]
        below = sum(v < chance for v, _ in pts)
        ax.scatter(
            [v for v, _ in pts],
            [y for _, y in pts],
            s=22,
            color=colors[ratio],
            zorder=3,
            label=f"{_pct(ratio)} ({below}/{len(pts)} below chance)",
        )
    if base:
        pts = [(v, pos[s]) for s, v in _present(base)]
        ax.scatter([v for v, _ in pts], [y for _, y in pts], s=28, marker="x", color=BASE_COLOR, zorder=4,
                   label=f"base model ({sum(v < chance for v, _ in pts)}/{len(pts)} below chance)")
    ax.axvline(chance, color="red", linewidth=1.5, label=f"chance ({chance:.0%})", zorder=2)
    ax.set_yticks([pos[s] for s in subjects], [s.replace("_", " ") for s in subjects], fontsize=7)
    ax.set_ylim(-0.8, len(subjects) - 0.2)
    ax.set_xlim(-0.02, 1.02)  # dots at 0 and 1 stay whole
    ax.set_xlabel("accuracy")
    ax.set_title("Per-subject accuracy vs random guessing")
    ax.grid(alpha=0.3, axis="x")
    if not subjects:
        _no_data(ax)
    fig.legend(loc="outside upper center", ncols=2, fontsize=8, frameon=False)
    return _save(fig, out)


def score_vs_epoch(
    avg: Mapping[float, Mapping[int, float | None]], out: Path | str, base: float | None = None
) -> Path:
    """Fig. 5: average benchmark score per training epoch, one line per corruption ratio; the base
    model's average (epoch 0, untrained) as a dotted line where given."""
    fig = Figure(figsize=(6.4, 4.4), layout="constrained")
    ax = fig.subplots()
    colors = _ratio_colors(sorted(avg))
    epochs: set[int] = set()
    for ratio in sorted(avg):
        pts = _present(avg[ratio])
        epochs.update(e for e, _ in pts)
        if pts:
            ax.plot(
                [e for e, _ in pts], [v for _, v in pts], marker="o", color=colors[ratio], label=_pct(ratio)
            )
    if ax.lines:
        if _ok(base):
            ax.axhline(base, color=BASE_COLOR, linestyle=":", linewidth=1.5, label="base model")
        ax.set_xticks(sorted(epochs))
        fig.legend(loc="outside right center", title="corruption", fontsize=8)
    else:
        _no_data(ax)
    ax.set(xlabel="epoch", ylabel="average score", title="Average score vs training epoch")
    ax.grid(alpha=0.3)
    return _save(fig, out)


def recovery_bars(
    clean: Mapping[str, float | None],
    corrupted: Mapping[str, float | None],
    recovered: Mapping[str, float | None],
    out: Path | str,
    from_ratio: float = 1.0,
    base: Mapping[str, float | None] | None = None,
) -> Path:
    """Fig. 6: per benchmark, the corrupted model's score (grey), the margin recovered by clean
    retraining (blue) and the margin still below the clean model (red).

    `from_ratio` is the corruption ratio of the retrained model (for the legend); `base` scores
    are drawn as green ticks.
    Benchmarks lacking any of the three scores are left out. A recovered score above
    clean shows as blue past the black clean tick; one below the corrupted score shows
    no blue.
    """
    rows: list[tuple[str, float, float, float]] = []
    for b, cl in clean.items():
        co, re = corrupted.get(b), recovered.get(b)
        if _ok(cl) and _ok(co) and _ok(re):
            rows.append((b, cl, co, re))
    names = [b for b, *_ in rows]
    fig = Figure(figsize=(max(5.0, 0.6 * len(names) + 2.5), 5.0), layout="constrained")
    ax = fig.subplots()
    for i, (_, cl, co, re) in enumerate(rows):
        top = max(co, re)
        # zero-height bars would pin the y limit (sticky edge) at their bottom: skip them
        for bottom, height, color in (
            (0.0, co, "0.7"),
            (co, top - co, CLEAN_COLOR),
            (top, cl - top, CORRUPT_COLOR),
        ):
            if height > 0:
                ax.bar(i, height, bottom=bottom, color=color)
        ax.plot([i - 0.4, i + 0.4], [cl, cl], color="black", linewidth=1.2)
        level = (base or {}).get(names[i])
        if _ok(level):
            ax.plot([i - 0.4, i + 0.4], [level, level], color=BASE_COLOR, linewidth=1.5, linestyle=":")
    ax.set_xticks(range(len(names)), [b.replace("_", " ") for b in names], rotation=45, ha="right",
                  rotation_mode="anchor", fontsize=8)
    ax.set(ylabel="score", title="Recovery of the fully corrupted model")
    ax.grid(alpha=0.3, axis="y")
    if names:
        handles = [
            Patch(color="0.7", label=f"corrupted model ({_pct(from_ratio)})"),
            Patch(color=CLEAN_COLOR, label="recovered by clean retraining"),
            Patch(color=CORRUPT_COLOR, label="unrecovered"),
            Line2D([], [], color="black", label="clean model (CR 0%)"),
        ]
        if any(_ok(v) for v in (base or {}).values()):
            handles.append(Line2D([], [], color=BASE_COLOR, linestyle=":", linewidth=1.5, label="base model"))
        ncols = 4 if len(names) >= 12 else 2
        fig.legend(handles=handles, loc="outside upper center", ncols=ncols, fontsize=8, frameon=False)
    else:
        _no_data(ax)
    return _save(fig, out)
