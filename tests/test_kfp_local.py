"""The smoke corruption study through the real KFP local runner (SubprocessRunner, this venv)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from faco import kfp_cli
from faco.config import parse_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_smoke_study_runs_locally_to_a_report(tmp_path: Path) -> None:
    config = ROOT / "configs" / "smoke.yaml"
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
