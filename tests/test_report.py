"""Analyze + report from fixture artifacts: every number checked against a hand computation."""

from __future__ import annotations

import base64
import json
import math
import re
from pathlib import Path
from typing import Any

import matplotlib.image
import pytest

from faco import artifacts
from faco.config import Study
from faco.evaluation.suite import suite
from faco.stages import analyze, evaluate, report, train

ARC = {0.0: 0.6, 0.5: 0.5, 1.0: 0.2}  # arc_challenge score per corruption ratio
SUBJECTS = {"abstract_algebra": 0.0, "anatomy": 0.25}  # MMLU accuracy per subject at CR 100 %, n = 20 each
# per-sample losses at CR 50 %, epoch 1: (loss, is_corrupted); 3 of 4 (corrupted, clean) pairs ranked right
SAMPLES = [(1.0, False), (2.0, False), (3.0, True), (1.5, True)]


def _model(out: Path, ratio: float, start: Path | None = None) -> Path:
    meta: dict[str, Any] = {"ratio": ratio, "tag": f"cr_{round(ratio * 100):03d}"}
    if start is not None:
        meta |= {"start_ratio": 1.0, "start_checkpoint": {"path": str(start)}}
    with artifacts.artifact_dir(out, train.KIND, [], "cfg", meta) as tmp:
        (tmp / "loss.jsonl").write_text("".join(json.dumps({"step": s, "loss": 3.0 - s * ratio / 2}) + "\n"
                                                for s in (1, 2)))
        rows = SAMPLES if ratio == 0.5 else [(1.0 + ratio, ratio == 1.0)] * 2
        (tmp / "sample_loss.jsonl").write_text("".join(
            json.dumps({"epoch": 1, "id": str(i), "loss": loss, "is_corrupted": bad}) + "\n"
            for i, (loss, bad) in enumerate(rows)))
    return out


def _scores(arc: float, mmlu: dict[str, float] | None) -> dict[str, Any]:
    def entry(score: float) -> dict[str, Any]:
        return {"score": score, "metrics": {"acc": {"value": score, "stderr": None}}, "n": 20}

    scores: dict[str, Any] = {"arc_challenge": entry(arc), "epochs": {"1": {"arc_challenge": arc - 0.1},
                                                                      "2": {"arc_challenge": arc}}}
    if mmlu is not None:
        scores["mmlu"] = {**entry(sum(mmlu.values()) / len(mmlu)),
                          "subtasks": {s: {"metrics": {"acc": {"value": a, "stderr": None}}, "n": 20}
                                       for s, a in mmlu.items()}}
    return scores


def _eval(out: Path, model: Path, scores: dict[str, Any]) -> Path:
    meta = {k: v for k, v in artifacts.read_manifest(model)["meta"].items() if k in ("ratio", "tag", "start_ratio")}
    with artifacts.artifact_dir(out, evaluate.KIND, [model], "cfg", meta) as tmp:
        (tmp / "scores.json").write_text(json.dumps(scores))
        (tmp / "probes.jsonl").write_text(json.dumps({"set": "case_study", "question": "What is 2+2?",
                                                      "answer": f"{int(4 + meta['ratio'] * 2)}"}) + "\n")
    return out


@pytest.fixture(scope="module")
def analysis(tmp_path_factory: pytest.TempPathFactory, smoke: Study) -> Path:
    root = tmp_path_factory.mktemp("study")
    models, evals = [], []
    for r, arc in ARC.items():
        models.append(_model(root / "train" / f"cr_{r}", r))
        evals.append(_eval(root / "eval" / f"cr_{r}", models[-1], _scores(arc, SUBJECTS if r == 1.0 else None)))
    rec = _model(root / "train" / "recovery", 0.0, start=models[-1])
    evals.append(_eval(root / "eval" / "recovery", rec, {"arc_challenge": _scores(0.5, None)["arc_challenge"]}))
    study = smoke.model_copy(update={"analyze": smoke.analyze.model_copy(update={"threshold_fraction": 0.9})})
    return analyze.run(study, evals, [*models, rec], root / "analysis")


def test_table1_statistics_match_hand_computation(analysis: Path) -> None:
    a = json.loads((analysis / "analysis.json").read_text())
    row = a["table"]["arc_challenge"]
    assert row["scores"] == {"0": 0.6, "0.5": 0.5, "1": 0.2}
    assert row["abs"] == pytest.approx(0.4)
    # r = sum(dx dy) / sqrt(sum dx^2 sum dy^2) with dx = (-.5, 0, .5), dy = (1/6, 1/15, -7/30)
    r = -0.2 / math.sqrt(0.5 * (1 / 36 + 1 / 225 + 49 / 900))
    assert row["pearson_r"] == pytest.approx(r)
    # n = 3: t with 1 degree of freedom is Cauchy, p = 1 - 2 atan(|t|) / pi
    t = r / math.sqrt(1 - r * r)
    assert row["pearson_p"] == pytest.approx(1 - 2 * math.atan(abs(t)) / math.pi)
    # 0.9 x 0.6 = 0.54 is crossed between correct shares 0.5 (0.5) and 1.0 (0.6)
    assert row["threshold_correct_share"] == pytest.approx(0.5 + 0.04 / 0.1 * 0.5)
    assert a["domain_average"][suite()["arc_challenge"].domain]["0.5"] == pytest.approx(0.5)


def test_recovery_detection_chance_and_epochs(analysis: Path) -> None:
    a = json.loads((analysis / "analysis.json").read_text())
    rec = a["recovery"][0]
    assert rec["from_ratio"] == 1.0
    assert rec["benchmarks"]["arc_challenge"]["recovered_fraction"] == pytest.approx((0.5 - 0.2) / (0.6 - 0.2))
    assert a["corruption_detection_auroc"]["0.5"]["1"] == pytest.approx(0.75)
    assert a["corruption_detection_auroc"]["0"]["1"] is None  # no corrupted sample: undefined
    lies = a["below_chance"]["1"]
    assert lies["subjects"]["abstract_algebra"]["p_below"] == pytest.approx(0.75 ** 20)
    assert lies["significantly_below"] == ["abstract_algebra"]
    assert lies["overall"]["p_below"] == pytest.approx(
        sum(math.comb(40, k) * 0.25 ** k * 0.75 ** (40 - k) for k in range(6)))
    assert a["epoch_average"]["0"] == {"1": pytest.approx(0.5), "2": pytest.approx(0.6)}
    assert {p["model"] for p in a["probes"]} == {"0", "0.5", "1", "recovered from 1"}


def test_report_tables_figures_and_lineage(analysis: Path, smoke: Study, tmp_path: Path) -> None:
    out = report.run(smoke, analysis, tmp_path / "report")
    assert artifacts.verify(out) == []
    md = (out / "report.md").read_text()
    domain = suite()["arc_challenge"].domain
    assert f"| arc_challenge | {domain} | 0.600 | 0.500 | 0.200 | 0.400 | -0.961 |" in md
    assert "| arc_challenge | 0.600 | 0.200 | 0.500 | 0.750 |" in md  # recovery table
    assert "| abstract_algebra | 0.000 | 20 |" in md and "| anatomy |" not in md
    assert "| 1 | case_study | What is 2+2? | 6 |" in md
    # figures in the paper's order, each a real PNG, each inlined in the HTML
    order = re.findall(r"\]\(figures/([a-z_]+\.png)\)", md)
    assert order == list(report.FIGURE_CAPTIONS)
    html = (out / "report.html").read_text()
    inlined = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert len(inlined) == 5
    for name, data in zip(order, inlined, strict=True):
        assert base64.b64decode(data) == (out / "figures" / name).read_bytes()
        assert matplotlib.image.imread(out / "figures" / name).shape[0] > 200
    # the lineage table names every evaluation and model the analysis read, by manifest hash
    parents = artifacts.read_manifest(analysis)["parents"]
    assert len(parents) == 8
    for p in parents:
        assert f"| {p['kind']} | {p['path']} | {p['manifest_sha256'][:16]} |" in md
