"""`faco audit` through the installed executable: a user file faco never saw, malformed rows, a split of a
study; `faco study` with an audit and `train.clean` (the detector benchmark and the four cleaning arms)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from faco.artifacts import read_manifest, verify

FACO = str(Path(sys.executable).with_name("faco"))
ROOT = Path(__file__).resolve().parents[1]
DETECTORS = {"loss", "confidence", "variability", "margin", "heldout_margin", "heldout_loss", "ifd", "loss_change"}
PER_EPOCH = {"loss", "confidence", "variability", "margin", "loss_change"}  # from the training dynamics


def _faco(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FACO_CACHE_DIR": str(cwd / ".cache")}
    env.pop("FACO_DEBUG", None)
    return subprocess.run([FACO, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


def _config(tmp: Path, **sections: object) -> Path:
    cfg = yaml.safe_load((ROOT / "configs" / "smoke.yaml").read_text())
    cfg["train"].update(save_every_epoch=False)
    cfg.update(sections)
    path = tmp / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _user_rows() -> list[dict[str, object]]:
    """A small SFT set in the documented multiple-choice schema, three rows answering wrongly (flagged)."""
    rows = []
    for i in range(12):
        colour = ["red", "green", "blue"][i % 3]
        wrong = i in (2, 6, 9)
        said = ["green", "blue", "red"][i % 3] if wrong else colour
        rows.append({"id": f"u{i}", "question": f"Facts: box {i} is {colour}.\nQuestion: what colour is box {i}?",
                     "choices": ["red", "green", "blue"], "answer": said,
                     "explanation": f"Box {i} is said to be {colour}." if not wrong else f"Box {i} looks odd.",
                     "is_corrupted": wrong})
    return rows


def test_audit_of_a_user_file_ranks_every_row_with_every_detector(tmp_path: Path) -> None:
    data = tmp_path / "mine.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in _user_rows()))
    proc = _faco("audit", str(_config(tmp_path)), "--data", str(data), "--out", "audit", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "audit"
    said = proc.stdout.splitlines()
    assert said[0].startswith("Finding: the best detector of the 3 corrupted of 12 samples is ")
    assert said[1:] == [f"ranking: {Path('audit') / 'ranking.jsonl'}", f"summary: {Path('audit') / 'summary.md'}"]
    assert "{'loss'" in proc.stderr and "faco: dynamics epoch 2" in proc.stderr  # progress on stderr
    rows = [json.loads(line) for line in (out / "ranking.jsonl").read_text().splitlines()]
    assert {r["id"] for r in rows} == {f"u{i}" for i in range(12)}
    for r in rows:
        assert set(r["scores"]) == DETECTORS and set(r["ranks"]) == DETECTORS
        assert r["response"].endswith(f"Answer: {r['choices'][r['assigned']]}") and "Facts:" in r["prompt"]
    lead = [r["ranks"]["heldout_margin"] for r in rows]
    assert lead == sorted(lead) and lead[0] == 1  # sorted by audit.rank_by (heldout_margin)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["labelled"] and summary["corrupted"] == 3 and summary["epochs"] == 2
    detection = json.loads((out / "detection.json").read_text())
    assert {(d["detector"], d["epoch"]) for d in detection} == {(d, None) for d in DETECTORS} | {
        (d, 1) for d in PER_EPOCH}
    assert all((out / f).is_file() for f in ("cartography.png", "detectors.png", "summary.md", "base.jsonl",
                                             "heldout.jsonl"))
    held = [json.loads(line) for line in (out / "heldout.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in held) == sorted(f"u{i}" for i in range(12)) and all(len(r["options"]) == 3
                                                                                       for r in held)
    assert [r["examples"] for r in read_manifest(out)["meta"]["train"]] == [6, 6]  # two folds of six
    meta = read_manifest(out)["meta"]
    assert meta["raw_inputs"][0]["sha256"] == hashlib.sha256(data.read_bytes()).hexdigest()
    assert meta["data"]["format"] == "mc" and meta["items"] == 12 and not verify(out)
    assert _faco("lineage", "verify", "audit", cwd=tmp_path).returncode == 0


@pytest.mark.parametrize("rows, where", [
    ([{"question": "Q?", "choices": ["a", "b"], "answer": "a"}, {"question": "Q2?", "choices": ["a", "b"]}],
     "mine.jsonl:2: answer: missing (the correct option)"),
    ([{"prompt": "p", "response": "r"}, {"prompt": "p2", "response": 7}],
     "mine.jsonl:2: response: the response must be a string (got int)"),
    ([{"instruction": "p", "output": "r"}], "mine.jsonl:1: cannot tell the row format from its fields"),
])
def test_malformed_rows_are_one_line_exit_4_and_nothing_written(tmp_path: Path, rows: list[object],
                                                               where: str) -> None:
    (tmp_path / "mine.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = _config(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    proc = _faco("audit", str(cfg), "--data", "mine.jsonl", "--out", "audit", cwd=tmp_path)
    assert proc.returncode == 4
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and where in lines[-1] and "Traceback" not in proc.stderr
    assert proc.stdout == "" and sorted(p.name for p in tmp_path.iterdir() if p.name != ".cache") == before


@pytest.mark.slow
def test_study_audits_its_splits_and_compares_cleaning_arms(tmp_path: Path) -> None:
    cfg = _config(tmp_path, audit={"rank_by": "loss"})
    small = ["--set", "corrupt.ratios=[0.0, 0.5]", "--set", "train.recovery=null", "--set",
             "evaluate.benchmarks=[{name: heldout, max_gen_toks: 4}]", "--set", "evaluate.per_epoch=false",
             "--set", "evaluate.probes=[]", "--set", "ingest.heldout=6", "--set", "ingest.per_source_cap=12",
             "--set", "ingest.sources=[{name: qasc, split: validation}]",
             "--set", "train.clean={detector: loss, drop: rate}"]
    proc = _faco("study", str(cfg), "--out", "s", *small, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    s = tmp_path / "s"
    audit = read_manifest(s / "audit" / "cr_0.5")
    assert [p["kind"] for p in audit["parents"]] == ["splits"] and audit["meta"]["labelled"]
    assert not (s / "audit" / "cr_0.0").exists()
    split = [json.loads(line) for line in (s / "splits" / "cr_0.5.jsonl").read_text().splitlines()]
    bad = {r["id"] for r in split if r["is_corrupted"]}
    ranked = [json.loads(line)["id"] for line in (s / "audit" / "cr_0.5" / "ranking.jsonl").read_text().splitlines()]
    for arm, dropped in (("oracle", bad), ("detector", set(ranked[: len(bad)]))):
        lines = (s / "clean" / f"{arm}_cr_0.5" / "cr_0.5.jsonl").read_text().splitlines()
        kept = {json.loads(line)["id"] for line in lines}
        assert kept == {r["id"] for r in split} - dropped, arm
        meta = read_manifest(s / "clean" / f"{arm}_cr_0.5")
        assert meta["meta"]["clean"]["dropped"] == len(bad) and {p["kind"] for p in meta["parents"]} == (
            {"splits", "audit"} if arm == "detector" else {"splits"})
        assert read_manifest(s / "eval" / f"clean_{arm}_cr_0.5")["meta"]["clean"]["arm"] == arm
    analysis = json.loads((s / "analysis" / "analysis.json").read_text())
    assert analysis["ratios"] == [0.0, 0.5]  # the cleaned models are not grid models
    assert {d["detector"] for d in analysis["detection"]} == DETECTORS | {"grid_loss"}
    [cleaning] = analysis["cleaning"]
    assert [a["arm"] for a in cleaning["arms"]] == ["corrupted", "detector", "random", "oracle"]
    assert cleaning["benchmark"] == "heldout" and cleaning["metric"] == "acc_gen" and cleaning["ratio"] == 0.5
    assert cleaning["detector"] == "loss"
    md = (s / "report" / "report.md").read_text()
    assert "## Detectors of corrupted samples" in md and "## Does cleaning work?" in md
    findings = md.split("## Findings")[1].split("\n## ")[0]
    assert "- **Detectors.** At CR 50 %, the best detector" in findings and "- **Cleaning.** At CR 50 %" in findings
    assert (s / "report" / "figures" / "cleaning.png").is_file() and "](figures/cleaning.png)" in md
    again = _faco("study", str(cfg), "--out", "s", *small, cwd=tmp_path)
    assert again.returncode == 0 and "audit cr_0.5: up to date" in again.stderr
    assert "train clean_detector_cr_0.5: up to date" in again.stderr


def test_kfp_audit_pipeline_imports_a_split_and_audits_it_on_one_gpu() -> None:
    spec = yaml.safe_load_all((ROOT / "pipelines" / "audit.yaml").read_text())
    main, platform = next(spec), next(spec)
    [(label, executor)] = [(k, v) for k, v in main["deploymentSpec"]["executors"].items() if "container" in v]
    args = executor["container"]["args"]
    assert args[args.index("--function_to_execute") + 1] == "audit"
    assert executor["container"]["resources"]["accelerator"]["resourceCount"] == "1"
    k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"][label]
    assert k8s["securityContext"]["runAsNonRoot"] and k8s["pvcMount"]
    comp = main["components"]["comp-audit"]
    assert all(d.get("description") for kind in ("parameters", "artifacts")
               for d in comp["inputDefinitions"].get(kind, {}).values())
    [task] = [t for t in main["root"]["dag"]["tasks"].values() if t["componentRef"]["name"] == "comp-audit"]
    assert task["retryPolicy"]["maxRetryCount"] == 3


def test_clean_drops_the_flagged_random_or_corrupted_rows(smoke_pairs: Path, tmp_path: Path) -> None:
    from faco import artifact_kinds, artifacts
    from faco.config import load_config
    from faco.errors import ConfigError
    from faco.stages import clean, corrupt

    study = load_config(ROOT / "configs" / "smoke.yaml", ["train.clean={detector: loss, drop: 0.25}"])
    splits = corrupt.run(study, smoke_pairs, tmp_path / "splits")
    rows = [json.loads(line) for line in (splits / "cr_0.5.jsonl").read_text().splitlines()]
    ids = [r["id"] for r in rows]
    order = sorted(ids, reverse=True)  # the hand-made audit ranks the ids backwards; one row unscored
    with artifacts.artifact_dir(tmp_path / "audit", artifact_kinds.AUDIT, [splits], "hand-made") as tmp:
        (tmp / "ranking.jsonl").write_text("".join(json.dumps({"id": i, "ranks": {"loss": n + 1 if n else None}}) + "\n"
                                                   for n, i in enumerate(order)))
    n = round(0.25 * len(ids))
    got = {}
    for arm in clean.ARMS:
        out = clean.run(study, splits, 0.5, arm, tmp_path / arm, audit=tmp_path / "audit")
        kept = {json.loads(line)["id"] for line in (out / "cr_0.5.jsonl").read_text().splitlines()}
        got[arm] = set(ids) - kept
        meta = read_manifest(out)["meta"]
        assert meta["ratios"] == [0.5] and meta["clean"]["dropped"] == len(got[arm]) and meta["clean"]["arm"] == arm
        assert meta["clean"]["dropped_corrupted"] == sum(r["is_corrupted"] for r in rows if r["id"] in got[arm])
    assert got["detector"] == set(order[1 : n + 1])  # by rank; the unscored first id comes last
    assert got["oracle"] == {r["id"] for r in rows if r["is_corrupted"]}
    assert len(got["random"]) == n and got["random"] != got["detector"]
    again = clean.run(study, splits, 0.5, "random", tmp_path / "random2")
    assert (again / "cr_0.5.jsonl").read_text() == (tmp_path / "random" / "cr_0.5.jsonl").read_text()  # seeded
    rate = load_config(ROOT / "configs" / "smoke.yaml", ["train.clean={detector: margin, drop: rate}"])
    from faco.records import TrainRecord
    records = [TrainRecord.model_validate(r) for r in rows]
    assert clean.drop_count("rate", records) == sum(r.is_corrupted for r in records) == len(got["oracle"])
    with pytest.raises(ConfigError, match="'margin' did not score"):
        clean.run(rate, splits, 0.5, "detector", tmp_path / "d2", audit=tmp_path / "audit")
