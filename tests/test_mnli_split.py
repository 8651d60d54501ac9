"""The MultiNLI mirror's two halves (the `multinli` training source and the `faco_mnli` benchmark) share no
premise: MNLI pairs one premise with about three hypotheses, so a split by pair let training questions
carry benchmark premises."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from faco.config import SourceSpec, load_config
from faco.contamination import normalise, overlaps
from faco.stages import ingest

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "data/sources/multinli/validation_matched_source.jsonl"
BENCH = ROOT / "data/benchmarks/multinli/validation_matched_benchmark.jsonl"


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_no_premise_is_in_both_halves() -> None:
    source, bench = _rows(SOURCE), _rows(BENCH)
    assert len(source) + len(bench) == 9815
    assert 0.45 < len(source) / 9815 < 0.55
    assert not {normalise(r["premise"]) for r in source} & {normalise(r["premise"]) for r in bench}
    assert {r["label"] for r in bench} == {0, 1, 2}
    assert {r["label"] for r in source} == {"entailment", "neutral", "contradiction"}


def test_the_whole_source_half_passes_the_contamination_check() -> None:
    study = load_config(ROOT / "configs" / "nli-synthetic-cpu.yaml")
    assert study.ingest.allow_contamination is False
    records, rejects = ingest.load_source(study, SourceSpec(name="multinli", split="validation_matched"))
    assert not rejects and len(records) == len(_rows(SOURCE))
    assert overlaps(records, ingest.benchmark_indexes(study)) == []


def test_the_cpu_config_ingests_without_contamination(tmp_path: Path) -> None:
    out = tmp_path / "ingest"
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "faco"), "ingest", str(ROOT / "configs" / "nli-synthetic-cpu.yaml"),
         "--out", str(out)],
        capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads((out / "manifest.json").read_text())["meta"]["contamination"] == {}
    assert "contamination" not in proc.stderr
