"""End to end: `faco study` on the smoke config through the real CLI; a rerun reuses every artifact."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import pytest

from faco.artifacts import manifest_hash, read_manifest, verify

FACO = [sys.executable, "-m", "faco"]


def test_cli_reports_bad_config_in_one_line(tmp_path: Path, root: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text((root / "configs" / "smoke.yaml").read_text().replace("epochs: 2", "epochs: 0"))
    proc = subprocess.run([*FACO, "validate", str(bad)], capture_output=True, text=True)
    assert proc.returncode == 3  # a config error (faco.errors.EXIT_CONFIG)
    assert proc.stderr.strip() == f"error: {bad}: train.epochs: Input should be greater than or equal to 1"


@pytest.mark.slow
def test_smoke_study_end_to_end(tmp_path: Path, root: Path) -> None:
    out = tmp_path / "study"
    proc = subprocess.run([*FACO, "study", str(root / "configs" / "smoke.yaml"), "--out", str(out)],
                          capture_output=True, text=True, cwd=root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # stdout is what was found, then where the report is, and nothing else: the Trainer's loss lines,
    # DeepSpeed's warnings and every other library's chatter go to stderr
    said = proc.stdout.splitlines()
    assert said[0] == "Findings:", proc.stdout[:2000]
    assert "{'loss'" in proc.stderr and "{'loss'" not in proc.stdout
    assert said[-1] == f"report: {out / 'report' / 'report.md'}"
    assert any(line.startswith("- F1. ") for line in said) and (out / "report" / "findings.txt").read_text() == \
        "".join(line + "\n" for line in said[1:-1])
    report = (out / "report" / "report.md").read_text()
    assert "| benchmark | domain | CR 0% | CR 25% | CR 50% | CR 75% | CR 100% | ABS | Pearson r |" in report
    assert "| arc_challenge |" in report and "| openbookqa |" in report
    html = (out / "report" / "report.html").read_text()
    assert "data:image/png;base64," in html and "<img" in html
    # the smoke study exercises every figure of the paper (Figs. 2-6)
    figures = {p.name for p in (out / "report" / "figures").glob("*.png")}
    assert figures == {"score_vs_ratio.png", "train_loss.png", "mmlu_subjects.png", "score_vs_epoch.png",
                       "recovery.png", "detectors.png"}
    for name in figures:
        img = matplotlib.image.imread(out / "report" / "figures" / name)
        assert img.shape[0] > 200 and img.shape[1] > 200, name

    analysis = json.loads((out / "analysis" / "analysis.json").read_text())
    assert analysis["ratios"] == [0.0, 0.25, 0.5, 0.75, 1.0]
    arc = analysis["table"]["arc_challenge"]
    scores = {cell["ratio"]: cell["score"] for cell in arc["cells"]}
    assert arc["abs"] == pytest.approx(scores[0.0] - scores[1.0])
    assert analysis["recovery"][0]["from_ratio"] == 1.0
    # per-epoch scores (evaluate.per_epoch over train.save_every_epoch checkpoints) for every ratio
    scores = json.loads((out / "eval" / "cr_0.5" / "scores.json").read_text())
    assert sorted(scores["epochs"]) == ["1", "2"]
    assert set(scores["epochs"]["1"]) == {"arc_challenge", "openbookqa", "mmlu", "heldout"}
    # the untrained base model, evaluated once, and the held-out questions in the training format
    base = read_manifest(out / "eval" / "base")
    assert base["meta"]["base"] is True and "ratio" not in base["meta"]
    assert read_manifest(out / "train" / "base")["meta"]["base"] is True
    held = json.loads((out / "eval" / "base" / "scores.json").read_text())["heldout"]
    assert sorted(held["subtasks"]) == ["aqua_rat", "commonsense_qa", "openbookqa", "qasc"]  # mbpp is code
    assert held["unparsed"] <= held["n"] and 0 < held["chance"] < 1

    # every artifact is intact and chained to its parents
    for art in [out / "ingest", out / "pairs", out / "splits", *sorted((out / "train").iterdir()),
                *sorted((out / "eval").iterdir()), out / "analysis", out / "report"]:
        assert verify(art) == [], art
    rec = read_manifest(out / "train" / "recovery_from_cr_1.0")
    assert rec["meta"]["start_ratio"] == 1.0
    assert [p["kind"] for p in rec["parents"]] == ["splits", "model"]

    # a second run with nothing changed trains and evaluates nothing
    again = subprocess.run([*FACO, "study", str(root / "configs" / "smoke.yaml"), "--out", str(out)],
                           capture_output=True, text=True, cwd=root)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "train cr_0.5: up to date" in again.stderr
    assert "faco: train:" not in again.stderr


@pytest.mark.slow
def test_study_seeds_base_row_and_heldout(tmp_path: Path, root: Path) -> None:
    """`faco study --seeds 0,1`: one ingest, splits and base evaluation, the grid once per seed into
    seed_N/, every evaluation (base included, meta.seed) passed to the analysis."""
    out = tmp_path / "study"
    sets = ["corrupt.ratios=[0.0, 1.0]", "train.recovery=null", "train.epochs=1", "train.save_every_epoch=false",
            "evaluate.per_epoch=false", "evaluate.probes=[]",
            'evaluate.benchmarks=[{name: copa, shots: 0, limit: 2}, {name: heldout, max_gen_toks: 4, limit: 1}]']
    cmd = [*FACO, "study", str(root / "configs" / "smoke.yaml"), "--out", str(out), "--seeds", "0,1"]
    proc = subprocess.run([*cmd, *(a for s in sets for a in ("--set", s))], capture_output=True, text=True, cwd=root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not (out / "train" / "cr_0.0").exists() and (out / "train" / "base").is_dir()
    metas = {}
    for ev in [out / "eval" / "base", *(out / f"seed_{s}" / "eval" / t for s in (0, 1) for t in ("cr_0.0", "cr_1.0"))]:
        assert verify(ev) == [], ev
        manifest = read_manifest(ev)
        metas[ev.relative_to(out).as_posix()] = manifest["meta"]
        assert [p["kind"] for p in manifest["parents"]] == ["model", "sources"]  # heldout from the study's ingest
        assert manifest["parents"][1]["manifest_sha256"] == manifest_hash(out / "ingest")
        scores = json.loads((ev / "scores.json").read_text())
        assert scores["heldout"]["n"] == len(scores["heldout"]["subtasks"]) >= 3  # limit 1 per source
        assert (ev / "samples" / "heldout.jsonl").is_file() and (ev / "samples" / "copa.jsonl").is_file()
    assert metas["eval/base"]["base"] is True and "ratio" not in metas["eval/base"]
    assert {(m["ratio"], m["seed"]) for k, m in metas.items() if k != "eval/base"} == {
        (0.0, 0), (1.0, 0), (0.0, 1), (1.0, 1)}
    # the two seeds trained different models
    w0, w1 = ((out / f"seed_{s}" / "train" / "cr_0.0" / "model" / "model.safetensors").read_bytes() for s in (0, 1))
    assert w0 != w1
    assert (out / "report" / "report.md").is_file()

    # nothing changed: the base model, its evaluation and every seed's grid are reused
    again = subprocess.run([*cmd, *(a for s in sets for a in ("--set", s))], capture_output=True, text=True, cwd=root)
    assert again.returncode == 0, again.stderr[-3000:]
    for name in ("base model", "evaluate base", "train cr_1.0 seed 1", "evaluate cr_0.0 seed 0"):
        assert f"{name}: up to date" in again.stderr, name
    assert "loading model" not in again.stderr

    bad = subprocess.run([*cmd[:-1], "0,x"], capture_output=True, text=True, cwd=root)
    assert bad.returncode != 0 and bad.stderr.strip().splitlines()[-1].endswith(
        "--seeds: '0,x': expected comma-separated integers, e.g. 0,1,2")
