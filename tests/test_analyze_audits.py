"""The detector benchmark and the cleaning comparison in the analysis, as a user meets them: the installed
`faco analyze --audits --cleaned-evals` writes them into analysis.json (schema 3), and `faco report`
shows the tables, the figures and the Findings' sentences (docs/audit.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import study_fixture

from faco import artifact_kinds, artifacts
from faco.analysis import detection

FACO = str(Path(sys.executable).with_name("faco"))
#: heldout items correct (of study_fixture.N = 40) of the models retrained on the cleaned CR 50 % split
CLEANED = {"oracle": 24, "detector": 22, "random": 17}


def _audit(out: Path) -> Path:
    """An audit of the CR 50 % split whose margin detector ranks 3 of 4 (corrupted, clean) pairs right."""
    found = [detection.detection([0.9, 0.2, 0.8, 0.1, 0.3, 0.85], [1, 0, 1, 0, 0, 0], 200, 0, "margin", 0.5)]
    with artifacts.artifact_dir(out, artifact_kinds.AUDIT, [], "cfg", {"labelled": True}) as tmp:
        (tmp / "detection.json").write_text(json.dumps([d.model_dump(mode="json") for d in found]))
    return out


def _cleaned(out: Path, arm: str) -> Path:
    """The evaluation of the model trained on the CR 50 % split cleaned by `arm`."""
    meta = {"clean": {"arm": arm, "from_ratio": 0.5, "dropped": 2, "detector": "margin" if arm == "detector" else None}}
    with artifacts.artifact_dir(out, artifact_kinds.EVAL, [], "cfg", meta) as tmp:
        correct = [i < CLEANED[arm] for i in range(study_fixture.N)]
        (tmp / "scores.json").write_text(json.dumps({"heldout": study_fixture.entry(sum(correct) / study_fixture.N,
                                                                                    "heldout")}))
        study_fixture.samples(tmp, "heldout", correct)
    return out


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory, root: Path) -> tuple[Path, Path]:
    """(analysis, report) of the hand-made study with one audit and the three cleaned models."""
    tmp = tmp_path_factory.mktemp("audited")
    from faco.config import load_config

    study_fixture.study(tmp, load_config(root / "configs" / "smoke.yaml"))  # the grid's artifacts
    _audit(tmp / "audits" / "cr_0.5")
    for arm in CLEANED:
        _cleaned(tmp / "cleaned" / arm, arm)
    cfg = str(root / "configs" / "smoke.yaml")
    proc = subprocess.run([FACO, "analyze", cfg, "--evals", str(tmp / "eval"), "--models", str(tmp / "train"),
                           "--audits", str(tmp / "audits"), "--cleaned-evals", str(tmp / "cleaned"),
                           "--out", str(tmp / "with_audits")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = subprocess.run([FACO, "report", cfg, "--analysis", str(tmp / "with_audits"), "--out", str(tmp / "report")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return tmp / "with_audits", tmp / "report"


def test_the_audits_detectors_join_grid_loss_in_analysis_json(study: tuple[Path, Path]) -> None:
    a = json.loads((study[0] / "analysis.json").read_text())
    assert a["schema_version"] == 3
    rows = {(d["detector"], d["ratio"], d["epoch"]): d for d in a["detection"]}
    assert set(rows) == {("grid_loss", 0.5, 1), ("margin", 0.5, None)}
    margin = rows[("margin", 0.5, None)]
    assert margin["auroc"]["value"] == pytest.approx(7 / 8)  # 0.85 outranks one corrupted: 7 of 8 pairs
    assert margin["precision_at_k"]["value"] == pytest.approx(1 / 2)  # top 2: 0.9 (corrupted), 0.85 (clean)
    parents = {p["kind"] for p in artifacts.read_manifest(study[0])["parents"]}
    assert artifact_kinds.AUDIT in parents


def test_the_cleaning_comparison_is_the_share_of_the_oracles_gain(study: tuple[Path, Path]) -> None:
    [c] = json.loads((study[0] / "analysis.json").read_text())["cleaning"]
    corrupted = study_fixture.HELDOUT[0.5]  # 16 of 40
    assert [x["arm"] for x in c["arms"]] == ["corrupted", "detector", "random", "oracle"]
    assert [x["score"] for x in c["arms"]] == pytest.approx(
        np.array([corrupted, CLEANED["detector"], CLEANED["random"], CLEANED["oracle"]]) / study_fixture.N)
    assert c["gain"] == pytest.approx((CLEANED["oracle"] - corrupted) / study_fixture.N)
    det, rnd = c["recovered"]
    assert det["fraction"] == pytest.approx((22 - 16) / (24 - 16)) and rnd["fraction"] == pytest.approx(1 / 8)
    assert det["ci"][0] <= det["fraction"] <= det["ci"][1]
    assert (c["ratio"], c["detector"], c["benchmark"], c["n_items"]) == (0.5, "margin", "heldout", study_fixture.N)


def test_the_report_shows_the_tables_figures_and_sentences(study: tuple[Path, Path]) -> None:
    md = (study[1] / "report.md").read_text()
    findings = md.split("## Findings")[1].split("\n## ")[0]
    assert "- **Detectors.** At CR 50 %, the best detector of the 2 corrupted of 6 samples is margin: AUROC 0.88" in (
        findings)
    assert "the final-loss ranking reaches AUROC 0.75" in findings  # grid_loss at the same ratio
    assert "- **Cleaning.** At CR 50 %, cleaning with margin recovers 75 % (95 % CI [" in findings
    assert "| CR 50% | margin | end | 0.88 [" in md
    assert "| CR 50% | heldout acc_gen | margin | 0.400 [" in md
    for name in ("detectors.png", "cleaning.png"):
        assert f"](figures/{name})" in md and (study[1] / "figures" / name).stat().st_size > 1000
