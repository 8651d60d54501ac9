"""Study: every stage in order, into one output directory, reusing finished artifacts.

Layout: `ingest/ pairs/ splits/`, the untrained base model `train/base/` and its scores `eval/base/`,
then per training seed the grid and recovery models and evaluations: `train/<tag>/ eval/<tag>/` for
a single seed, `seed_<N>/train/<tag>/ seed_<N>/eval/<tag>/` for several. `analysis/` and `report/`
see every evaluation and model. With a `judge:` section, every model's sampled and judged probe
answers go to `judge/<tag>/` beside `eval/<tag>/` (paper 001).

With several `corrupt.kinds` (paper 001: subtle vs obvious false chains), each kind has its own
`kinds/<kind>/pairs/` and split family `kinds/<kind>/splits/` (the non-zero ratios) and its grid
under `kinds/<kind>/` (`train/<tag>/ eval/<tag>/ judge/<tag>/`, `seed_<N>/` within for several
seeds). `splits/` is then the clean split every kind shares: the base model and the clean model
(`train/cr_0.0/`, once per seed) come from it, and the analysis uses that one clean model as the
0 % point of every kind.

With an `audit:` section (or `train.clean`), every split of a ratio strictly between 0 and 1 is audited
(`faco audit`, with its own training runs) into `audit/<tag>/`; with `train.clean`, three cleaned
splits of it (`clean/<arm>_<tag>/`) are trained and evaluated as `train|eval/clean_<arm>_<tag>/`
(arms: detector, random, oracle). The analysis adds the audits' detectors to its detector benchmark
and compares the cleaned models with the grid's (docs/audit.md); its grid statistics do not see them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from faco import artifacts
from faco.config import Study
from faco.errors import ConfigError
from faco.progress import log
from faco.ratios import ratio_tag, split_path
from faco.stages import analyze, corrupt, evaluate, generate, ingest, judge, report, train
from faco.stages import audit as audit_stage
from faco.stages import clean as clean_stage

BASE = "base"


def _done(out: Path, study: Study, sections: tuple[str, ...], parents: list[Path]) -> bool:
    """Whether `out` is an intact artifact made by this config from exactly these parents."""
    if not (out / artifacts.MANIFEST).is_file():
        return False
    m = artifacts.read_manifest(out)
    recorded = [p["manifest_sha256"] for p in m["parents"]]
    current = [artifacts.manifest_hash(p) for p in parents]
    return m["config_hash"] == study.section_hash(*sections) and recorded == current and not artifacts.verify(out)


def _stage(name: str, out: Path, study: Study, section: str, parents: list[Path], fn, *args) -> Path:  # type: ignore[no-untyped-def]
    if _done(out, study, (section,), parents):
        log(f"{name}: up to date ({out})")
        return out
    start = time.perf_counter()
    fn(study, *args, out)
    log(f"{name}: done in {time.perf_counter() - start:.0f}s")
    return out


def _train_eval(study: Study, root: Path, tag: str, label: str, parents: list[Path], fit, heldout: list[Path]  # type: ignore[no-untyped-def]
                ) -> tuple[Path, Path]:
    """Train `root/train/<tag>` with `fit(study, out)` and evaluate it into `root/eval/<tag>`."""
    m = _stage(f"train {tag}{label}", root / "train" / tag, study, "train", parents, fit)
    e = _stage(f"evaluate {tag}{label}", root / "eval" / tag, study, "evaluate", [m, *heldout],
               lambda s, o: evaluate.run(s, m, o, heldout_from=heldout[0] if heldout else None))
    return m, e


@dataclass
class Grid:
    """What one grid made: its models and evaluations (ratios, recovery), and with an audit the audits of
    its corrupted splits and the cleaned models and their evaluations (`train.clean`)."""

    models: list[Path] = field(default_factory=list)
    evals: list[Path] = field(default_factory=list)
    audits: list[Path] = field(default_factory=list)
    cleaned: list[Path] = field(default_factory=list)
    cleaned_evals: list[Path] = field(default_factory=list)


def _grid(study: Study, root: Path, splits: Path, ratios: list[float], heldout: list[Path], label: str,
          clean: Path | None) -> Grid:
    """Train and evaluate `ratios` of `splits` under `root` (`label`: the log's kind and seed), then,
    with `clean` splits, recovery (`train.recovery`) of the model trained here; then the audits."""
    grid = Grid()
    for r in ratios:
        m, e = _train_eval(study, root, ratio_tag(r), label, [splits],
                           lambda s, o, r=r: train.run(s, splits, r, o), heldout)
        grid.models.append(m)
        grid.evals.append(e)
    rec = study.train.recovery
    if rec is not None and clean is not None:
        start = root / "train" / ratio_tag(rec.from_ratio)
        m, e = _train_eval(study, root, f"recovery_from_{ratio_tag(rec.from_ratio)}", label,
                           [clean, start], lambda s, o: train.run(s, clean, 0.0, o, start=start), heldout)
        grid.models.append(m)
        grid.evals.append(e)
    for r in (r for r in ratios if audit_stage.audits(study, r)):
        _audit(study, root, splits, r, heldout, label, grid)
    return grid


def _audit(study: Study, root: Path, splits: Path, r: float, heldout: list[Path], label: str, grid: Grid) -> None:
    """Audit the split of `r` (`faco audit`: its own training runs); with `train.clean`, train and evaluate
    its three cleaned splits (detector, random, oracle)."""
    tag = ratio_tag(r)
    a = _stage(f"audit {tag}{label}", root / "audit" / tag, audit_stage.configured(study), "audit", [splits],
               lambda s, o: audit_stage.run(s, split_path(splits, r), o))
    grid.audits.append(a)
    if study.train.clean is None:
        return
    for arm in clean_stage.ARMS:
        parents = [splits, a] if arm == "detector" else [splits]
        cs = _stage(f"clean {arm} {tag}{label}", root / "clean" / f"{arm}_{tag}", study, "train", parents,
                    lambda s, o, arm=arm: clean_stage.run(s, splits, r, arm, o, audit=a))
        m, e = _train_eval(study, root, f"clean_{arm}_{tag}", label, [cs],
                           lambda s, o, cs=cs: train.run(s, cs, r, o), heldout)
        grid.cleaned.append(m)
        grid.cleaned_evals.append(e)


def _of_kind(study: Study, kind: str) -> Study:
    """The study whose generate stage writes false chains of `kind`."""
    return study.model_copy(update={"generate": study.generate.model_copy(update={"false_chain": kind})})


def _splits(study: Study, out: Path, src: Path) -> tuple[Path, dict[str, Path]]:
    """Generate and corrupt: the splits the base and clean models come from, and each kind's family
    (a single-kind study: `splits/` alone, which holds every ratio)."""
    kinds = study.chain_kinds()
    if len(kinds) == 1:
        one = _stage("generate", out / "pairs", study, "generate", [src], generate.run, src)
        return _stage("corrupt", out / "splits", study, "corrupt", [one], corrupt.run, one), {}
    pairs = {k: _stage(f"generate {k}", out / "kinds" / k / "pairs", _of_kind(study, k), "generate", [src],
                       generate.run, src) for k in kinds}
    clean = _stage("corrupt clean", out / "splits", study, "corrupt", list(pairs.values()), corrupt.clean, pairs)
    return clean, {k: _stage(f"corrupt {k}", out / "kinds" / k / "splits", study, "corrupt", list(pairs.values()),
                             lambda s, o, k=k: corrupt.family(s, k, pairs, o)) for k in kinds}


def _judge_label(out: Path, model: Path) -> str:
    """`cr_0.5`, or `cr_0.5 obvious` for a model of one kind's grid."""
    parts = model.relative_to(out).parts
    return model.name + (f" {parts[1]}" if parts[0] == "kinds" else "")


def run(study: Study, out: Path, seeds: list[int] | None = None) -> Path:
    """Run ingest → generate → corrupt (per kind) → base model → train/evaluate per ratio (+ recovery)
    per seed and kind → analyze → report. `seeds`: training seeds (default: the config's `seeds`, else
    `train.seed` alone)."""
    out = Path(out)
    seeds = seeds or study.seeds or [study.train.seed]
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds: {','.join(map(str, seeds))}: a seed is repeated")
    src = _stage("ingest", out / "ingest", study, "ingest", [], ingest.run)
    splits, families = _splits(study, out, src)
    heldout = [src] if any(b.name == "heldout" for b in study.evaluate.benchmarks) else []
    first = _seeded(study, seeds[0])
    base = _stage("base model", out / "train" / BASE, first, "train", [splits], train.base, splits)
    models: list[Path] = [base]
    evals: list[Path] = [_stage("evaluate base", out / "eval" / BASE, first, "evaluate", [base, *heldout],
                                lambda s, o: evaluate.run(s, base, o, heldout_from=src if heldout else None))]
    audits: list[Path] = []
    cleaned: list[Path] = []
    cleaned_evals: list[Path] = []
    for seed in seeds:
        root = out if len(seeds) == 1 else out / f"seed_{seed}"
        label = f" seed {seed}" if len(seeds) > 1 else ""
        seeded = _seeded(study, seed)
        if not families:
            grids = [_grid(seeded, root, splits, study.corrupt.ratios, heldout, label, clean=splits)]
        else:  # the clean model once, then every kind's corrupted ratios and recovery
            grids = [_grid(seeded, root, splits, [0.0], heldout, label, clean=None)]
            grids += [_grid(seeded, out / "kinds" / k / root.relative_to(out), fam,
                            [r for r in study.corrupt.ratios if r > 0], heldout, f" {k}{label}", clean=splits)
                      for k, fam in families.items()]
        for grid in grids:
            models += grid.models
            evals += grid.evals
            audits += grid.audits
            cleaned += grid.cleaned
            cleaned_evals += grid.cleaned_evals
    analysis = out / "analysis"
    judged = [_stage(f"judge {_judge_label(out, m)}", m.parent.parent / "judge" / m.name, study, "judge", [m],
                     lambda s, o, m=m: judge.run(s, m, o))
              for m in models] if study.judge is not None else []  # paper 001: judged probe answers
    analyze.run(study, evals, models, analysis, judged=judged, audits=audits, cleaned_evals=cleaned_evals)
    rep = report.run(study, analysis, out / "report")
    log(f"study {study.name}: report at {rep / 'report.md'}")
    return rep


def parse_seeds(text: str) -> list[int]:
    """`0,1,2` -> [0, 1, 2]; anything else is a one-line ConfigError."""
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise ConfigError(f"--seeds: {text!r}: expected comma-separated integers, e.g. 0,1,2") from None


def _seeded(study: Study, seed: int) -> Study:
    """The study with training seed `seed`."""
    return study.model_copy(update={"train": study.train.model_copy(update={"seed": seed})})
