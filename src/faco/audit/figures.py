"""The audit's figures (PNG, matplotlib Agg, no display): the data map of dataset cartography and the
detector benchmark."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from matplotlib.figure import Figure

from faco.analysis.detection import finals
from faco.analysis.figures import CLEAN_COLOR, CORRUPT_COLOR, DPI
from faco.analysis.schema import Cleaning, Detection

FLAGGED_COLOR = "tab:orange"
OTHER_COLOR = "0.6"


def _save(fig: Figure, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=DPI, format="png")
    return out


def cartography(confidence: Mapping[str, float], variability: Mapping[str, float], out: Path,
                labels: Mapping[str, bool] | None = None, flagged: Sequence[str] = (), epochs: int = 1) -> Path:
    """Variability (x) against confidence (y), one dot per sample: red/blue for corrupted/clean where the
    labels are known, else orange for the `flagged` samples (the ranking's top) and grey for the rest."""
    fig = Figure(figsize=(6.4, 5.2))
    ax = fig.add_subplot()
    ids = sorted(set(confidence) & set(variability))
    if labels is not None:
        groups = [("clean", CLEAN_COLOR, [i for i in ids if not labels.get(i)]),
                  ("corrupted", CORRUPT_COLOR, [i for i in ids if labels.get(i)])]
    else:
        top = set(flagged)
        groups = [("other", OTHER_COLOR, [i for i in ids if i not in top]),
                  ("flagged (top of the ranking)", FLAGGED_COLOR, [i for i in ids if i in top])]
    for name, color, members in groups:
        if members:
            ax.scatter([variability[i] for i in members], [confidence[i] for i in members], s=14, alpha=0.75,
                       color=color, label=f"{name} ({len(members)})")
    if not ids:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel(f"variability (std over {epochs} epoch{'s' if epochs != 1 else ''})")
    ax.set_ylabel("confidence (mean token probability, mean over epochs)")
    ax.set_title("Data map (dataset cartography)")
    if ids:
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return _save(fig, out)


def detector_bars(found: Sequence[Detection], out: Path) -> Path:
    """AUROC with its 95 % interval per detector (end of training), one group of bars per ratio; chance at 0.5."""
    final = [d for d in finals(found) if d.auroc.value is not None]
    names = list(dict.fromkeys(d.detector for d in final))
    ratios = sorted({d.ratio for d in final}, key=lambda r: -1.0 if r is None else r)
    fig = Figure(figsize=(max(6.0, 1.1 * len(names) + 2), 4.4))
    ax = fig.add_subplot()
    width = 0.8 / max(1, len(ratios))
    for j, r in enumerate(ratios):
        xs, ys, lo, hi = [], [], [], []
        for i, name in enumerate(names):
            d = next((d for d in final if d.detector == name and d.ratio == r), None)
            if d is None or d.auroc.value is None:
                continue
            xs.append(i - 0.4 + width * (j + 0.5))
            ys.append(d.auroc.value)
            lo.append(d.auroc.value - (d.auroc.ci[0] if d.auroc.ci[0] is not None else d.auroc.value))
            hi.append((d.auroc.ci[1] if d.auroc.ci[1] is not None else d.auroc.value) - d.auroc.value)
        label = "this split" if r is None else f"CR {100 * r:g}%"
        ax.bar(xs, ys, width=width, yerr=[lo, hi], capsize=3, label=label)
    ax.axhline(0.5, color="0.35", linestyle="--", linewidth=1, label="chance")
    ax.set_xticks(range(len(names)), names, rotation=20)
    ax.set_ylim(0.0, 1.05)
    ax.set_ylabel("AUROC (95 % bootstrap CI)")
    ax.set_title("Detectors of corrupted samples")
    if not names:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return _save(fig, out)


def cleaning_bars(compared: Sequence[Cleaning], out: Path) -> Path:
    """Held-out score of the four arms (corrupted, detector-cleaned, random removal, oracle) per ratio,
    with 95 % item-bootstrap intervals."""
    colors = {"corrupted": CORRUPT_COLOR, "detector": FLAGGED_COLOR, "random": OTHER_COLOR, "oracle": CLEAN_COLOR}
    fig = Figure(figsize=(max(5.0, 2.6 * len(compared) + 1.5), 4.4))
    ax = fig.add_subplot()
    width = 0.2
    for i, c in enumerate(compared):
        for j, arm in enumerate(c.arms):
            lo = arm.score - (arm.ci[0] if arm.ci[0] is not None else arm.score)
            hi = (arm.ci[1] if arm.ci[1] is not None else arm.score) - arm.score
            ax.bar(i + (j - 1.5) * width, arm.score, width=width, yerr=[[lo], [hi]], capsize=3,
                   color=colors[arm.arm], label=arm.arm if i == 0 else None)
    ax.set_xticks(range(len(compared)), [f"CR {100 * c.ratio:g}%\n({c.detector})" for c in compared])
    ax.set_ylabel(f"{compared[0].benchmark} {compared[0].metric}" if compared else "score")
    ax.set_ylim(0.0, 1.05)
    ax.set_title("Retraining after removing rows: detector vs random vs oracle")
    if not compared:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, out)
