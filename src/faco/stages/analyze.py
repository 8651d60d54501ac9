"""Analyze: all evaluations and training logs -> Table 1, statistics with item-level uncertainty, findings, figures.

Inputs: eval artifacts (by the role of the model each scored: grid, base or recovery, `faco.roles`;
any of them with meta.seed) with `scores.json` and per-item `samples/<benchmark>.jsonl`, and the
model artifacts' training logs (`faco.analysis.inputs`). The statistics are `faco.analysis` (documented
in docs/analysis.md); this stage reads the artifacts and writes `analysis.json` (the typed
`faco.analysis.schema`), `findings.json`, a flat `metrics.json`, `table1.csv` and `figures/`.

Artifacts of several kinds of false chain (`corrupt.kinds`; the kind is the `kind` of the split
family in an artifact's lineage) are analysed per kind, each kind's family with the artifacts of
no kind (the base and the clean model every kind shares): `analysis.json` is then a `KindsAnalysis`
(one single-kind analysis per kind, thresholds compared across kinds, one misalignment table with a
kind per row); `metrics.json` is kind -> the flat metrics, `table1.csv` has a kind column and the
figures a `<kind>-` prefix.
"""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from faco import artifact_kinds, artifacts
from faco.analysis import audit_study, findings, inputs, misalignment, plots, schema
from faco.analysis.schema import BenchmarkRow, KindsAnalysis, StudyAnalysis
from faco.analysis.study import Family, compare_kinds, family, with_audits
from faco.audit import figures
from faco.config import AnalyzeConfig, Study
from faco.errors import ArtifactError
from faco.progress import debug, log
from faco.ratios import ratio_tag
from faco.records import write_json


def _table1_csv(tables: Mapping[str | None, Mapping[str, BenchmarkRow]], ratios: list[float], path: Path) -> None:
    """Table 1 as CSV: `tables` is kind -> rows (kind None: a single-kind study, no kind column)."""
    kind_col = None not in tables
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([*(["kind"] if kind_col else []), "benchmark", "domain", "metric", "base",
                    *[ratio_tag(x) for x in ratios], *[f"{ratio_tag(x)}_stderr" for x in ratios], "abs", "abs_ci_low",
                    "abs_ci_high", "pearson_r", "pearson_ci_low", "pearson_ci_high", "pearson_p_permutation",
                    "n_items"])
        for kind, rows in tables.items():
            for bench, e in rows.items():
                cells = [e.cell(x) for x in ratios]
                w.writerow([*([kind] if kind_col else []), bench, e.domain, e.metric, e.base.score,
                            *[c.score if c else None for c in cells], *[c.stderr if c else None for c in cells],
                            e.abs, *e.abs_ci, e.pearson_r, *e.pearson_ci, e.pearson_p, e.n_items])


def kind_of(path: Path) -> str | None:
    """The kind of false chain behind an artifact: the `kind` of the split family in its lineage;
    None for a single-kind study and for the base and clean models every kind shares."""
    for _, m in artifacts.ancestors(path, prune=lambda m: m["kind"] == artifact_kinds.SPLITS):
        if m["kind"] == artifact_kinds.SPLITS and m["meta"].get("kind"):  # the clean split: its pairs are every kind's
            return str(m["meta"]["kind"])
    return None


def _family(cfg: AnalyzeConfig, evals: Sequence[Path], models: Sequence[Path]) -> Family:
    return family(cfg, inputs.evals(evals), inputs.training_logs(models), inputs.probes(evals))


def analyze_artifacts(cfg: AnalyzeConfig, evals: list[Path], models: list[Path], judged: Sequence[Path] = ()
            ) -> tuple[StudyAnalysis | KindsAnalysis, dict[str | None, Family], list[str]]:
    """The analysis of the artifacts, its families (kind -> family; None: a single-kind study) and the kinds."""
    kinds = {p: kind_of(p) for p in [*evals, *models, *judged]}
    names = list(dict.fromkeys(k for k in kinds.values() if k is not None))
    if len(names) <= 1:
        one = _family(cfg, evals, models)
        if judged:  # paper 001: the judged probe answers of every model (`judge` artifacts)
            one.analysis.misalignment = misalignment.from_artifacts(list(judged))
        return one.analysis, {None: one}, names
    # paper 001: several kinds of false chain, each family with the shared base and clean models
    per: dict[str | None, Family] = {
        k: _family(cfg, [e for e in evals if kinds[e] in (None, k)], [m for m in models if kinds[m] in (None, k)])
        for k in names}
    mis = misalignment.from_artifacts(list(judged), kinds=kinds) if judged else None
    return compare_kinds({str(k): f.analysis for k, f in per.items()}, mis), per, names


def _write(tmp: Path, result: StudyAnalysis | KindsAnalysis, families: Mapping[str | None, Family]) -> None:
    write_json(tmp / schema.FILE, schema.dump(result))
    if isinstance(result, StudyAnalysis):
        write_json(tmp / "findings.json", result.findings.model_dump(mode="json"))
        write_json(tmp / "metrics.json", findings.flat_metrics(result.table))
    else:
        write_json(tmp / "findings.json", {**result.findings.model_dump(mode="json"), "by_kind": {
            k: a.findings.model_dump(mode="json") for k, a in result.by_kind.items()}})
        write_json(tmp / "metrics.json", {k: findings.flat_metrics(a.table) for k, a in result.by_kind.items()})
    if isinstance(result, StudyAnalysis) and result.nli_gap is not None:
        write_json(tmp / "nli_gap.json", result.nli_gap)
    if result.misalignment is not None:
        write_json(tmp / "misalignment.json", result.misalignment)
    _table1_csv({k: f.analysis.table for k, f in families.items()}, result.ratios, tmp / "table1.csv")
    (tmp / "figures").mkdir()
    for k, f in families.items():
        plots.draw(f, tmp / "figures", f"{k}-" if k is not None else "")
    runs = result.by_kind.values() if isinstance(result, KindsAnalysis) else [result]
    found = [d for a in runs for d in a.detection]
    if found:
        figures.detector_bars(found, tmp / "figures" / "detectors.png")
    if result.cleaning:
        figures.cleaning_bars(result.cleaning, tmp / "figures" / "cleaning.png")


def run(study: Study, evals: list[Path], models: list[Path], out: Path, judged: Sequence[Path] = (),
        audits: Sequence[Path] = (), cleaned_evals: Sequence[Path] = ()) -> Path:
    """`audits` (`faco audit` of corrupted splits) add their detectors to the detector benchmark;
    `cleaned_evals` (the models of `train.clean`) give the cleaning comparison (docs/audit.md)."""
    if not evals:
        raise ArtifactError("analyze: no evaluation artifacts given")
    debug(f"analyze: {len(evals)} evaluations, {len(models)} models, {len(judged)} judged artifacts, "
          f"{len(audits)} audits, {len(cleaned_evals)} cleaned-model evaluations")
    result, families, names = analyze_artifacts(study.analyze, evals, models, judged)
    if audits or cleaned_evals:
        cfg = study.analyze
        result = with_audits(result, audit_study.detections(audits),
                             audit_study.comparisons(evals, cleaned_evals, cfg.bootstrap, cfg.seed))
    benchmarks = sorted({b for f in families.values() for b in f.analysis.table})
    meta: dict[str, Any] = {"ratios": result.ratios, "benchmarks": benchmarks, "base": result.has_base,
                            "seeds": result.seeds}
    if names[1:]:
        meta["kinds"] = names
    parents = [*evals, *models, *judged, *audits, *cleaned_evals]
    with artifacts.artifact_dir(out, artifact_kinds.ANALYSIS, parents, study.section_hash("analyze"), meta) as tmp:
        _write(tmp, result, families)
    log(f"analyze: {len(benchmarks)} benchmarks over {len(result.ratios)} ratios"
        + (f" x {len(result.seeds)} seeds" if len(result.seeds) > 1 else "")
        + (f" x {len(names)} kinds ({', '.join(names)})" if names[1:] else "")
        + (", base model" if result.has_base else ""))
    return out


def export(analysis_dir: Path, out: Path, models: Sequence[Path] = ()) -> None:
    """DVC-facing copies of an analysis: `metrics.json` (flat), `scores.csv` (long form, for plots),
    `train_loss.csv` (the step losses of the trained `models`, long form) and `figures/` (PNG plots)."""
    out.mkdir(parents=True, exist_ok=True)
    with (out / "train_loss.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["corruption_ratio", "step", "loss"])
        for log_ in inputs.training_logs(models):  # the first run of each ratio, no recovery, no base model
            w.writerows([f"{log_.ratio:g}", step, loss] for step, loss in log_.steps)
    shutil.rmtree(out / "figures", ignore_errors=True)
    shutil.copytree(analysis_dir / "figures", out / "figures")
    a = schema.read(analysis_dir)
    write_json(out / "metrics.json", json.loads((analysis_dir / "metrics.json").read_text()))
    with (out / "scores.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["benchmark", "corruption_ratio", "score"])
        for bench, row in (a.table.items() if isinstance(a, StudyAnalysis) else ()):
            w.writerows([bench, f"{c.ratio:g}", c.score] for c in row.cells)
