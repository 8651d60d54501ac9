"""The paper's figures (2–6) of one analysed split family, drawn by `faco.analysis.figures`."""

from __future__ import annotations

from pathlib import Path

from faco.analysis import figures
from faco.analysis.inputs import mean
from faco.analysis.study import Family
from faco.roles import Role


def draw(fam: Family, folder: Path, prefix: str = "") -> None:
    """Every figure the family has data for, as `folder/<prefix><name>.png`."""
    a, ev = fam.analysis, fam.evals

    def out(name: str) -> Path:
        return folder / f"{prefix}{name}"

    base = {b: row.base.score for b, row in a.table.items()}
    figures.score_vs_ratio({b: row.scores() for b, row in a.table.items()}, out("score_vs_ratio.png"),
                           {b: row.chance for b, row in a.table.items()}, base=base,
                           ci={b: {c.ratio: c.score_ci for c in row.cells if c.score_ci is not None}
                               for b, row in a.table.items()})
    if fam.losses.steps:
        figures.loss_curves(fam.losses.steps, fam.losses.samples, out("train_loss.png"))
    if a.below_chance:
        of_base = next((m for m in a.below_chance if m.model.role is Role.BASE), None)
        figures.per_subject_vs_chance(
            {m.model.ratio: {s: v.acc for s, v in m.subjects.items()} for m in a.below_chance
             if m.model.ratio is not None}, 1 / fam.mmlu_k, out("mmlu_subjects.png"),
            base={s: v.acc for s, v in of_base.subjects.items()} if of_base else None)
    if a.epoch_average:
        first = next(iter(ev.grid.values()))[0].scores.get("epochs") or {}
        names = sorted({b for per in first.values() for b in per})
        figures.score_vs_epoch({x.ratio: {e.epoch: e.value for e in x.epochs} for x in a.epoch_average},
                               out("score_vs_epoch.png"), base=mean([base.get(b) for b in names]) if names else None)
    if a.recovery:
        top = max(a.recovery, key=lambda s: s.from_ratio)
        rb = top.benchmarks
        figures.recovery_bars({k: v.clean for k, v in rb.items()}, {k: v.corrupted for k, v in rb.items()},
                              {k: v.recovered for k, v in rb.items()}, out("recovery.png"), from_ratio=top.from_ratio,
                              base={k: base.get(k) for k in rb})
