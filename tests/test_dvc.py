"""`dvc repro` in a fresh clone runs the smoke study offline; a second repro does no work;
`dvc exp run -S` sweeps the ratio grid that `dvc.yaml`'s foreach stages follow."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml


def fresh_clone(root: Path, clone: Path, params: dict[str, Any] | None = None) -> dict[str, str]:
    """The working tree's tracked files as a new git repository (like a fresh `git clone`), with
    `params` (section -> keys) merged into params.yaml before the commit; returns the env for dvc."""
    if not (root / ".git").exists():
        pytest.skip("needs a git checkout")
    files = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True).stdout
    for rel in filter(None, files.decode().split("\0")):
        src = root / rel
        if src.is_file():
            (clone / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, clone / rel)
    if params:
        merged = yaml.safe_load((clone / "params.yaml").read_text())
        for section, values in params.items():
            merged[section].update(values)
        (clone / "params.yaml").write_text(yaml.safe_dump(merged, sort_keys=False))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(clone / "src"), "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "clone"]):
        subprocess.run(cmd, cwd=clone, check=True, env=env)
    return env


def dvc(clone: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=clone, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


@pytest.mark.slow
def test_dvc_repro_fresh_clone(tmp_path: Path, root: Path) -> None:
    clone = tmp_path / "clone"
    # two models keep the test quick; the full grid is in test_study
    env = fresh_clone(root, clone, {"corrupt": {"ratios": [0.0, 1.0]}})

    first = dvc(clone, env, "repro")
    assert "Running stage 'train@0-1.0'" in first.stdout
    assert (clone / "artifacts" / "report" / "report.md").is_file()
    assert (clone / "reports" / "metrics.json").is_file()
    # the analysis is the one `faco study` writes from the same config, base-model row included
    # (issue 19, defect 8); the evaluations declare the ingest artifact they ask `heldout` from (defect 3)
    study = subprocess.run([str(Path(sys.executable).parent / "faco"), "study", "params.yaml", "--out", "study"],
                           cwd=clone, env=env, capture_output=True, text=True)
    assert study.returncode == 0, study.stderr[-3000:]
    ours = json.loads((clone / "artifacts" / "analysis" / "analysis.json").read_text())
    assert ours["has_base"] and ours["recovery"]
    assert ours == json.loads((clone / "study" / "analysis" / "analysis.json").read_text())
    lock = yaml.safe_load((clone / "dvc.lock").read_text())["stages"]
    assert "artifacts/ingest" in {d["path"] for d in lock["evaluate@0-0.0"]["deps"]}

    second = dvc(clone, env, "repro")
    assert "Running stage" not in second.stdout
    assert "Data and pipelines are up to date" in dvc(clone, env, "status").stdout
    # r is undefined (left out) when a tiny random model scores alike at every ratio; ABS and p always exist
    shown = json.loads(dvc(clone, env, "metrics", "show", "--json").stdout)
    (metrics,) = (v["data"]["reports/metrics.json"]["data"] for v in shown.values())
    assert {"abs", "p"} <= set(metrics["arc_challenge"])
    (plot,) = json.loads(dvc(clone, env, "plots", "show", "--json").stdout)["data"]["reports/scores.csv"]
    assert plot["content"]["encoding"]["color"]["field"] == "benchmark"  # faco's template: a line per benchmark
    rows = plot["content"]["data"]["values"]
    assert {(r["benchmark"], float(r["corruption_ratio"])) for r in rows} >= {("arc_challenge", 0.0),
                                                                            ("arc_challenge", 1.0)}
    # the training loss (a series per ratio) and the analysis figures are plots too, for `dvc plots diff`
    plots = json.loads(dvc(clone, env, "plots", "show", "--json").stdout)["data"]
    (loss,) = plots["reports/train_loss.csv"]
    assert loss["content"]["encoding"]["color"]["field"] == "corruption_ratio"
    steps = [(r["corruption_ratio"], int(r["step"])) for r in loss["content"]["data"]["values"]]
    assert {s for s in steps if s[1] == 1} == {("0", 1), ("1", 1)}
    assert {"reports/figures/score_vs_ratio.png", "reports/figures/train_loss.png"} <= set(plots)
    assert lock["evaluate@0-0.0"]["params"]["params.yaml"]["ingest.data_dir"] is None


def _params_of(stage: dict[str, Any]) -> set[str]:
    return set((stage.get("do") or stage).get("params", []))


def _faco_stage(stage: dict[str, Any]) -> str:
    """The faco stage a DVC stage runs: the subcommand of its `faco ...` command (`faco base-model`
    is the train stage's base model: it reads what train reads)."""
    words = (stage.get("do") or stage)["cmd"].split()
    command = words[words.index("faco") + 1]
    return {"base-model": "train"}.get(command, command)


def test_every_stage_declares_the_params_it_reads(root: Path) -> None:
    """Each stage's `params:` are what faco.stage_reads.READS says its faco command reads (the paths
    its artifacts' config hash covers), all present in params.yaml (DVC refuses a declared key the file
    lacks); models are artifacts."""
    from faco.stage_reads import READS

    spec = yaml.safe_load((root / "dvc.yaml").read_text())
    for name, stage in spec["stages"].items():
        assert _faco_stage(stage) in READS, f"{name}: `faco {_faco_stage(stage)}` is not in faco.stage_reads.READS"
        assert _params_of(stage) == set(READS[_faco_stage(stage)]), name
    params = yaml.safe_load((root / "params.yaml").read_text())
    for key in {k for stage in spec["stages"].values() for k in _params_of(stage)}:
        node = params
        for part in key.split("."):
            assert part in node, key
            node = node[part]
    trained = {spec["stages"]["train"]["outs"][0].rsplit("/", 1)[0],
               spec["stages"]["train_recovery"]["do"]["outs"][0].rsplit("/", 1)[0]}
    assert {a["path"] for a in spec["artifacts"].values() if a["type"] == "model"} == trained
    assert spec["stages"]["base_model"]["outs"] == ["artifacts/train/base"]
    for name in ("evaluate", "evaluate_base", "evaluate_recovery"):  # heldout's questions: a declared input
        stage = spec["stages"][name].get("do") or spec["stages"][name]
        assert "--heldout artifacts/ingest" in stage["cmd"] and "artifacts/ingest" in stage["deps"], name


#: The cheapest study that still runs every stage: few rows, one epoch, four documents.
TINY = {"ingest": {"per_source_cap": 4},
        "train": {"epochs": 1, "save_every_epoch": False},
        "evaluate": {"benchmarks": [{"name": "arc_challenge", "shots": 0, "limit": 4}], "per_epoch": False}}


@pytest.mark.slow
def test_dvc_exp_run_sweeps_the_ratio_grid(tmp_path: Path, root: Path) -> None:
    """`-S` overrides params.yaml for one experiment; the foreach stages follow the new grid."""
    clone = tmp_path / "clone"
    env = fresh_clone(root, clone, TINY)  # the committed grid stays the smoke config's five ratios
    run = dvc(clone, env, "exp", "run", "-n", "cr-ends", "-S", "corrupt.ratios=[0.0,1.0]")
    trained = sorted(line.split("'")[1] for line in run.stdout.splitlines() if line.startswith("Running stage 'train@"))
    assert trained == ["train@0-0.0", "train@0-1.0"], run.stdout[-2000:]

    shown = json.loads(dvc(clone, env, "exp", "show", "--json").stdout)
    (baseline,) = [r for r in shown if r["rev"] != "workspace"]  # the one commit; experiments hang below it
    (exp,) = [e for e in baseline["experiments"] or [] if e["name"] == "cr-ends"]
    (data,) = [r["data"] for r in exp["revs"]]
    assert data["params"]["params.yaml"]["data"]["corrupt"]["ratios"] == [0.0, 1.0]
    metrics = data["metrics"]["reports/metrics.json"]
    assert "error" not in metrics, metrics  # read from the experiment, not from the workspace
    # r and recovery are left out where undefined (a tiny random model scores alike at every ratio)
    assert all({"p", "abs"} <= set(m) for m in metrics["data"].values()), metrics
    # the workspace holds the experiment's results; the committed params are untouched in git
    committed = subprocess.run(["git", "show", "HEAD:params.yaml"], cwd=clone, env=env, capture_output=True,
                               text=True, check=True).stdout
    assert yaml.safe_load(committed)["corrupt"]["ratios"] == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_section_hash_covers_what_a_stage_reads_elsewhere(root: Path) -> None:
    from faco.config import load_config

    a = load_config(root / "params.yaml")
    b = load_config(root / "params.yaml", overrides=[f"ingest.data_dir={root / 'data'}"])
    assert a.section_hash("evaluate") != b.section_hash("evaluate")  # evaluate reads the mirror
    assert a.section_hash("train", "corrupt") == b.section_hash("train", "corrupt")
    c = load_config(root / "params.yaml", overrides=["evaluate.benchmarks=[{name: copa, shots: 0}]"])
    assert a.section_hash("ingest") != c.section_hash("ingest")  # the contamination check
    assert a.section_hash("evaluate", "ingest") == a.section_hash("ingest", "evaluate")
