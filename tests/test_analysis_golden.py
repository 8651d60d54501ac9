"""The typed analysis says what the analysis said before it was typed: every number of analysis.json
(read back through the model and laid out as schema 1 was) and the report's text, on the smoke study
(seed 0) and on the hand-made study of tests/test_report.py (tests/data/golden/README.md).

One change since is deliberate (the detector benchmark, docs/audit.md): the loss AUROC per ratio and
epoch is now the `grid_loss` detector's AUROC (the same numbers, with intervals, AP and precision at the
rate; one-class splits have no row), its table and Findings sentence and the detectors figure replace
the AUROC table. Those parts are compared as that, the rest of the text as it was."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import study_fixture

from faco import artifact_kinds, artifacts, roles
from faco.analysis import schema
from faco.analysis.detection import GRID_LOSS
from faco.analysis.schema import BenchmarkRow, Recovery, StudyAnalysis
from faco.analysis.tables import probe_model
from faco.config import Study
from faco.stages import analyze, report

GOLDEN = Path(__file__).parent / "data" / "golden"
#: the order `faco study` passes models and evaluations to the analysis
SMOKE_MODELS = ["base", "cr_0.0", "cr_0.25", "cr_0.5", "cr_0.75", "cr_1.0", "recovery_from_cr_1.0"]


def _g(r: float) -> str:
    return f"{r:g}"


def _recovery_v1(rec: Recovery) -> dict[str, Any]:
    return rec.model_dump(mode="json", exclude={"from_ratio", "recovered_ci"})


def _row_v1(row: BenchmarkRow) -> dict[str, Any]:
    """A Table 1 row as schema 1 wrote it: string ratio keys, the models' CIs keyed by label."""
    d = row.model_dump(mode="json", exclude={"cells", "recovery", "below_chance_at_max", "seeds", "base"})
    score_ci = {_g(c.ratio): list(c.score_ci) for c in row.cells if c.score_ci is not None}
    if row.base.score_ci is not None:
        score_ci["base"] = list(row.base.score_ci)
    score_ci |= {f"recovered from {_g(r.from_ratio)}": list(r.recovered_ci) for r in row.recovery if r.recovered_ci}
    t = row.below_chance_at_max
    chance = t.model_dump(mode="json", include={"ratio", "p_below", "unparsed"} if t.p_below is None else None)
    seeds = None if row.seeds is None else row.seeds.model_dump(mode="json", exclude={"cells"}, exclude_none=True) | {
        "slope": row.seeds.slope, "slope_p": row.seeds.slope_p, "exceeds_seed_noise": row.seeds.exceeds_seed_noise,
        "cells": {_g(c.ratio): {"mean": c.mean, "se": c.se, "n_seeds": c.n_seeds,
                                "per_seed": {str(s.seed): s.score for s in c.per_seed}} for c in row.seeds.cells}}
    return d | {
        "scores": {_g(c.ratio): c.score for c in row.cells}, "stderr": {_g(c.ratio): c.stderr for c in row.cells},
        "score_ci": score_ci, "base": {"score": row.base.score, "stderr": row.base.stderr},
        "delta_vs_base": {_g(c.ratio): {"delta": c.delta_vs_base, "ci": list(c.delta_ci)} for c in row.cells},
        "recovery": {_g(r.from_ratio): _recovery_v1(r) for r in row.recovery}, "below_chance_at_max": chance,
        "seeds": seeds}


def as_v1(a: StudyAnalysis) -> dict[str, Any]:
    """analysis.json of schema 1 from the typed analysis (what analyze wrote before it was typed)."""
    final = a.final_train_loss
    out = a.model_dump(mode="json", include={"ratios", "seeds", "has_base", "alpha", "bootstrap", "findings"})
    out["findings"]["findings"] = [f for f in out["findings"]["findings"] if f["id"] not in NEW_FINDINGS]
    out |= {
        "table": {b: _row_v1(row) for b, row in a.table.items()},
        "domain_average": {d: {_g(v.ratio): v.value for v in vs} for d, vs in a.domain_average.items()},
        "recovery": [{"from_ratio": s.from_ratio, "benchmarks": {b: _recovery_v1(r) for b, r in s.benchmarks.items()}}
                     for s in a.recovery],
        "below_chance": {("base" if m.model.role is roles.Role.BASE else _g(m.model.ratio or 0.0)):
                         m.model_dump(mode="json", exclude={"model"}) for m in a.below_chance},
        "final_train_loss": final.model_dump(mode="json") | {
            "step_loss": {_g(v.ratio): v.value for v in final.step_loss},
            "sample_loss": {_g(v.ratio): v.value for v in final.sample_loss}},
        "epoch_average": {_g(x.ratio): {str(e.epoch): e.value for e in x.epochs} for x in a.epoch_average},
        "probes": [{"model": probe_model(p), "set": p.set, "question": p.question, "answer": p.answer}
                   for p in a.probes]}
    return out | {k: v for k, v in (("nli_gap", a.nli_gap), ("misalignment", a.misalignment)) if v is not None}


#: the Findings the detector benchmark added
NEW_FINDINGS = ("detection", "cleaning")


def loss_auroc(a: StudyAnalysis) -> dict[str, dict[str, float]]:
    """The grid_loss detector's AUROC as schema 1's corruption_detection_auroc held it, without the
    one-class splits' undefined values."""
    out: dict[str, dict[str, float]] = {}
    for d in a.detection:
        if d.detector == GRID_LOSS and d.auroc.value is not None:
            out.setdefault(_g(d.ratio or 0.0), {})[str(d.epoch)] = d.auroc.value
    return out


def _before_auroc(before: dict[str, Any]) -> dict[str, dict[str, float]]:
    old = before.pop("corruption_detection_auroc")
    return {r: kept for r, eps in old.items() if (kept := {e: v for e, v in eps.items() if v is not None})}


def _old_text(md: str) -> str:
    """The report without what the detector benchmark replaced or added (its table and figure, the
    AUROC table, the Findings' detector sentence)."""
    md = re.sub(r"config hash `[0-9a-f]+`", "config hash `…`", md.split("## Lineage")[0])
    md = re.sub(r"^## (Corruption detection|Detectors of corrupted samples).*?(?=^## )", "", md, flags=re.M | re.S)
    md = re.sub(r"^!\[Detectors of corrupted samples.*?(?=^!\[|^## |\Z)", "", md, flags=re.M | re.S)
    return re.sub(r"^- \*\*Detectors\.\*\* .*\n", "", md, flags=re.M)


def same(got: Any, want: Any, where: str = "") -> None:
    """Equal structure, equal strings, floats equal to 1e-12 (BH and Wilson are scipy's now)."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and sorted(got) == sorted(want), (where, sorted(got), sorted(want))
        for k in want:
            same(got[k], want[k], f"{where}.{k}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), (where, got, want)
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            same(g, w, f"{where}[{i}]")
    elif isinstance(want, float) and not isinstance(got, bool) and isinstance(got, int | float):
        assert math.isclose(got, want, rel_tol=1e-12, abs_tol=1e-15), (where, got, want)
    else:
        assert got == want and type(got) is type(want), (where, got, want)


def _smoke_artifacts(root: Path, with_roles: bool) -> tuple[list[Path], list[Path]]:
    """The smoke study's model and eval artifacts rebuilt from the golden files; `with_roles`: with the
    `role` today's train writes (else as the faco that made them wrote them)."""
    made: dict[str, list[Path]] = {"train": [], "eval": []}
    for stage, kind in (("train", artifact_kinds.MODEL), ("eval", artifact_kinds.EVAL)):
        for name in SMOKE_MODELS:
            src = GOLDEN / "smoke" / stage / name
            meta = json.loads((src / "meta.json").read_text())
            if with_roles:
                meta["role"] = roles.of(meta).value
            with artifacts.artifact_dir(root / stage / name, kind, [], "golden", meta) as out:
                shutil.copytree(src, out, dirs_exist_ok=True, ignore=lambda d, names: ["meta.json"])
            made[stage].append(root / stage / name)
    return made["train"], made["eval"]


def _matches_before(analysis: Path, study: Study, before: Path, out: Path) -> None:
    a = schema.read(analysis)
    assert isinstance(a, StudyAnalysis) and a.schema_version == schema.SCHEMA_VERSION
    want = json.loads((before / "analysis.json").read_text())
    same(loss_auroc(a), _before_auroc(want), "corruption_detection_auroc")
    same(as_v1(a), want)
    found = json.loads((analysis / "findings.json").read_text())
    assert [f["id"] for f in found["findings"] if f["id"] in NEW_FINDINGS] == ["detection"]
    found["findings"] = [f for f in found["findings"] if f["id"] not in NEW_FINDINGS]
    same(found, json.loads((before / "findings.json").read_text()), "findings.json")
    same(json.loads((analysis / "metrics.json").read_text()), json.loads((before / "metrics.json").read_text()))
    assert (analysis / "table1.csv").read_text() == (before / "table1.csv").read_text()
    rep = report.run(study, analysis, out)
    said = (rep / "findings.txt").read_text()
    assert re.sub(r"^- Detectors\. .*\n", "", said, flags=re.M) == (before / "findings.txt").read_text()
    # the lineage table names this run's paths and hashes, and the config hash changes with every config field
    # added since; everything above it is the same text
    md = (rep / "report.md").read_text()
    assert "## Detectors of corrupted samples" in md and "](figures/detectors.png)" in md
    assert _old_text(md) == _old_text((before / "report.md").read_text())


@pytest.mark.parametrize("with_roles", [False, True], ids=["old-meta", "role-in-meta"])
def test_smoke_study_analysis_and_report_unchanged(tmp_path: Path, smoke: Study, with_roles: bool) -> None:
    models, evals = _smoke_artifacts(tmp_path, with_roles)
    analysis = analyze.run(smoke, evals, models, tmp_path / "analysis")
    _matches_before(analysis, smoke, GOLDEN / "smoke" / "before", tmp_path / "report")


def test_hand_made_study_analysis_and_report_unchanged(tmp_path: Path, smoke: Study) -> None:
    analysis = study_fixture.study(tmp_path, smoke)
    _matches_before(analysis, smoke, GOLDEN / "hand" / "before", tmp_path / "report")


def test_an_analysis_of_another_schema_is_refused(tmp_path: Path) -> None:
    (tmp_path / schema.FILE).write_text((GOLDEN / "smoke" / "before" / "analysis.json").read_text())
    with pytest.raises(Exception, match=r"analysis schema version 1, this faco reads 3; rerun `faco analyze`"):
        schema.read(tmp_path)
