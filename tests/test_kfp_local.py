"""The pipelines through the real KFP local runner (SubprocessRunner, this venv): the smoke study,
the recovery pipeline (on the code-executing evaluation branch) and a one-cell sweep."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from faco import kfp_cli
from faco.config import parse_config
from faco.kfp_glue import plan

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "configs" / "smoke.yaml"
#: The smallest settings that still run every stage: few rows, one epoch, a few documents.
TINY = ["ingest.per_source_cap=4", "corrupt.ratios=[0.0, 1.0]", "train.epochs=1", "train.save_every_epoch=false",
        "evaluate.per_epoch=false", 'evaluate.benchmarks=[{"name": "arc_challenge", "limit": 4}]']


def executor_outputs(run_dir: Path) -> dict[str, dict[str, Any]]:
    """task directory name -> its executor_output.json."""
    return {p.parent.name: json.loads(p.read_text()) for p in run_dir.rglob("executor_output.json")}


@pytest.mark.slow
def test_smoke_study_runs_locally_to_a_report(tmp_path: Path) -> None:
    config = SMOKE
    benchmarks = {b.name for b in parse_config(config.read_text()).evaluate.benchmarks}
    report = kfp_cli.run_local(config, ratios=[0.0, 1.0], pipeline_root=tmp_path)
    md = (report / "report.md").read_text()
    assert "## Table 1: score per corruption ratio" in md
    assert "| CR 0% | CR 100% |" in md
    assert "Recovery from CR 100%" in md  # smoke.yaml asks for recovery: the extra run reached analyze
    html = report.parent / "html"
    assert (html / "report.html").is_file()
    run_dir = report.parents[1]
    outputs = [json.loads(p.read_text()).get("artifacts", {}) for p in run_dir.rglob("executor_output.json")]
    metrics = [o["metrics"]["artifacts"][0]["metadata"] for o in outputs if "metrics" in o]
    assert len(metrics) == 3  # two ratios and the recovery run
    for m in metrics:
        assert set(m) == benchmarks and all(0.0 <= v <= 1.0 for v in m.values())


@pytest.mark.slow
def test_recovery_pipeline_runs_locally(tmp_path: Path) -> None:
    """Retrain a 100 %-corrupted model on the clean split; its evaluation runs model-written code."""
    from faco import lineage
    from faco.stages import corrupt, generate, ingest, train

    overrides = [*TINY, "evaluate.allow_code_execution=true",
                 'evaluate.benchmarks=[{"name": "arc_challenge", "limit": 4}, '
                 '{"name": "humaneval", "limit": 1, "repeats": 10, "max_gen_toks": 16}]']
    text = SMOKE.read_text()
    study = plan(text, overrides=overrides).study
    base = tmp_path / "inputs"  # what a finished study left behind (in S3 on a cluster)
    ingest.run(study, base / "ingest")
    generate.run(study, base / "ingest", base / "pairs")
    corrupt.run(study, base / "pairs", base / "splits")
    corrupted = train.run(study, base / "splits", 1.0, base / "cr_1")

    run = kfp_cli.run_pipeline_local("recovery", {
        "config_yaml": text, "model_uri": str(corrupted), "splits_uri": str(base / "splits"), "ratio": 0.0,
        "overrides": overrides}, tmp_path / "kfp")
    outputs = executor_outputs(run)
    # the code-executing branch ran (its pods carry the no-network label on a cluster), not the plain one,
    # reading the benchmark data that prefetch-benchmarks fetched before it
    assert "evaluate-untrusted" in outputs and "evaluate" not in outputs and "prefetch-benchmarks" in outputs
    assert yaml.safe_load(outputs["plan"]["parameterValues"]["config_yaml"])["evaluate"]["allow_code_execution"]
    model = next(run.rglob("train-from/model"))
    meta = json.loads((model / "manifest.json").read_text())["meta"]
    assert meta["ratio"] == 0.0 and meta["start_ratio"] == 1.0
    scores = outputs["evaluate-untrusted"]["artifacts"]["metrics"]["artifacts"][0]["metadata"]
    assert set(scores) == {"arc_challenge", "humaneval"} and all(0.0 <= v <= 1.0 for v in scores.values())
    evaluation = next(run.rglob("evaluate-untrusted/evaluation"))
    parents = json.loads((evaluation / "manifest.json").read_text())["parents"]
    assert [p["kind"] for p in parents] == ["model", "benchmarks"]
    assert lineage.verify(str(evaluation), search=[base]) == 0  # back through the imported model to the sources


@pytest.mark.slow
def test_sweep_pipeline_runs_one_cell_locally(tmp_path: Path) -> None:
    """One ratio grid x one seed: the sweep's loop over cells around a whole nested study."""
    run = kfp_cli.run_pipeline_local("sweep", {
        "config_yaml": SMOKE.read_text(), "ratio_grids": [[0.0, 1.0]], "seeds": [7],
        "overrides": [*TINY, "train.recovery=null"]}, tmp_path)
    outputs = executor_outputs(run)
    (cells,) = [o for name, o in outputs.items() if name == "sweep-cells"]
    assert cells["parameterValues"]["Output"] == [{"ratios": [0.0, 1.0], "overrides": [
        *TINY, "train.recovery=null", "train.seed=7"]}]
    resolved = yaml.safe_load(outputs["plan"]["parameterValues"]["config_yaml"])
    assert resolved["train"]["seed"] == 7 and resolved["corrupt"]["ratios"] == [0.0, 1.0]
    (report,) = run.rglob("markdown/report.md")
    assert "| CR 0% | CR 100% |" in report.read_text()
