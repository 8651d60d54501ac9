"""Later studies as configurations of the same system: paper 001 (thresholds, subtle vs obvious false
chains) and paper 002 (synthetic labels on MultiNLI), through the real CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from faco.records import PairRecord, TrainRecord, read_jsonl

ROOT = Path(__file__).resolve().parents[1]


def faco(*args: str | Path) -> str:
    """Run the `faco` CLI in a fresh interpreter; returns its stderr (the log)."""
    proc = subprocess.run([sys.executable, "-m", "faco", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stderr


def test_nli_synthetic_cpu_ingest_generate_corrupt(tmp_path: Path) -> None:
    cfg = ROOT / "configs" / "nli-synthetic-cpu.yaml"
    small = ["--set", "ingest.per_source_cap=12"]
    rule = ["--set", "generate.backend=template", "--set", "generate.model=template-v1"]  # the rule: fast
    faco("ingest", cfg, "--out", tmp_path / "ingest", *small)
    log = faco("generate", cfg, "--sources", tmp_path / "ingest", "--out", tmp_path / "pairs", *small, *rule)
    faco("corrupt", cfg, "--pairs", tmp_path / "pairs", "--out", tmp_path / "splits", *small)
    assert "own answers match the gold label" in log
    pairs = list(read_jsonl(tmp_path / "pairs" / "pairs.jsonl", PairRecord))
    assert len(pairs) == 12 and {p.source for p in pairs} == {"multinli"}
    assert all(p.generator["false_chain"] == "synthetic" and p.false.answer in p.choices for p in pairs)
    stats = json.loads((tmp_path / "splits" / "stats.json").read_text())
    assert [s["corrupted"] for s in stats.values()] == [0, 3, 6, 9, 12]
    full = {r.id: r for r in read_jsonl(tmp_path / "splits" / "cr_1.0.jsonl", TrainRecord)}
    for p in pairs:  # at 100 % every response is the generator's own answer, right or wrong
        assert full[p.id].response.endswith(f"Answer: {p.false.answer}") and full[p.id].domain == "nli"


def test_thresholds_cpu_subtle_and_obvious_arms(tmp_path: Path) -> None:
    cfg = ROOT / "configs" / "thresholds-cpu.yaml"
    small = ["--set", "ingest.per_source_cap=16", "--set", "ingest.heldout=4"]
    faco("ingest", cfg, "--out", tmp_path / "ingest", *small)
    arms = {}
    for kind in ("subtle", "obvious"):
        faco("generate", cfg, "--sources", tmp_path / "ingest", "--out", tmp_path / kind, *small,
             "--set", f"generate.false_chain={kind}", "--set", "corrupt.kinds=null")
        arms[kind] = {p.id: p for p in read_jsonl(tmp_path / kind / "pairs.jsonl", PairRecord)}
    assert arms["subtle"].keys() == arms["obvious"].keys() and len(arms["subtle"]) >= 15
    for pid, s in arms["subtle"].items():
        o = arms["obvious"][pid]
        assert (s.true, s.false.answer) == (o.true, o.false.answer) and s.false.reasoning != o.false.reasoning
    # the config compares both kinds in one `faco study`; the single-stage commands take one
    faco("corrupt", cfg, "--pairs", tmp_path / "obvious", "--out", tmp_path / "splits", *small,
         "--set", "corrupt.kinds=null")
    assert sorted(p.name for p in (tmp_path / "splits").glob("cr_*.jsonl")) == [
        "cr_0.0.jsonl", "cr_0.25.jsonl", "cr_0.5.jsonl", "cr_0.75.jsonl", "cr_1.0.jsonl"]


@pytest.mark.slow
def test_a_config_names_its_seeds(tmp_path: Path) -> None:
    """`seeds:` in a config: the NLI CPU study runs three (a HANS trend is tested against seed noise); a repeated
    seed is one line; `faco study` trains the grid once per configured seed."""
    from faco.config import load_config

    assert load_config(ROOT / "configs" / "nli-synthetic-cpu.yaml").seeds == [0, 1, 2]
    cfg = ROOT / "configs" / "smoke.yaml"
    bad = subprocess.run([sys.executable, "-m", "faco", "validate", str(cfg), "--set", "seeds=[1, 1]"],
                         capture_output=True, text=True)
    assert bad.returncode == 3
    assert bad.stderr.strip().splitlines() == [f"error: {cfg}: seeds: a seed is repeated: [1, 1]"]
    sets = {"seeds": "[3, 4]", "corrupt.ratios": "[0.0, 1.0]", "train.recovery": "null", "train.epochs": "1",
            "train.save_every_epoch": "false", "ingest.per_source_cap": "4", "evaluate.per_epoch": "false",
            "evaluate.probes": "[]", "evaluate.benchmarks": "[{name: arc_challenge, limit: 2}]"}
    proc = subprocess.run([sys.executable, "-m", "faco", "study", str(cfg), "--out", str(tmp_path / "s"),
                           *[a for k, v in sets.items() for a in ("--set", f"{k}={v}")]],
                          cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for seed in (3, 4):
        assert (tmp_path / "s" / f"seed_{seed}" / "eval" / "cr_1.0" / "scores.json").is_file()
    assert json.loads((tmp_path / "s" / "analysis" / "analysis.json").read_text())["seeds"] == [3, 4]
