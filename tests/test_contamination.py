"""Contamination: training questions a configured benchmark also asks are refused by the installed
`faco ingest` (exit 4, one line naming source, benchmark and count, nothing left on disk), or, when
allowed, counted in the manifest; the shipped mirror and configs are clean."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from faco.config import SourceSpec, load_config, parse_config
from faco.contamination import BenchmarkIndex, normalise, overlaps
from faco.paths import repo_root
from faco.records import SourceRecord
from faco.stages import ingest

ROOT = repo_root() or Path.cwd()
FACO = Path(sys.executable).with_name("faco")

ARC_QUESTION = "Which of these processes moves the most heat from the core of the Earth toward its surface?"
ARC_LONG = "Students measured how far a toy car rolled down ramps of four heights, and they recorded every distance"


def rec(i: int, question: str) -> SourceRecord:
    return SourceRecord(
        id=f"s:{i}", source="s", domain="knowledge", kind="mc", question=question,
        choices=["a", "b"], answer="a", answer_index=0,
    )


def test_exact_and_13gram_matches_counted_by_hand() -> None:
    bench = BenchmarkIndex("b")
    bench.add(ARC_QUESTION)
    bench.add(ARC_LONG + " in a table.")
    bench.add("The moon")  # an option text: too short to count as an exact question match
    records = [
        rec(0, ARC_QUESTION.upper().replace("?", " ?")),  # exact after normalisation (and 13-gram: 16 words)
        rec(1, "Before the test, " + ARC_LONG.lower()),  # shares 13-grams, not exact
        rec(2, "Which of these processes moves the most heat?"),  # 8 words shared, no 13-gram
        rec(3, "The moon"),
        rec(4, "Students measured how far a toy car rolled down ramps of four"),  # 12 words only
    ]
    assert normalise("Caf\u00e9, _ is  FINE!") == "café is fine"
    (o,) = overlaps(records, [bench])
    assert (o.source, o.benchmark, o.records, o.exact, o.ngram) == ("s", "b", 2, 1, 2)


def _mirror(tmp: Path) -> Path:
    """A data dir with one commonsense_qa file (two rows, one an ARC test question) and the ARC twin's file."""
    src = tmp / "data" / "sources" / "commonsense_qa"
    src.mkdir(parents=True)
    rows = [
        {"id": "c1", "answerKey": "A", "question": {"stem": ARC_QUESTION, "choices": [
            {"label": "A", "text": "convection"}, {"label": "B", "text": "erosion"}]}},
        {"id": "c2", "answerKey": "B", "question": {"stem": "Where is milk kept cold?", "choices": [
            {"label": "A", "text": "oven"}, {"label": "B", "text": "fridge"}]}},
    ]
    (src / "train_rand_split.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    arc = tmp / "data" / "benchmarks" / "arc"
    arc.mkdir(parents=True)
    (arc / "ARC-Challenge-Test.jsonl").write_text(json.dumps({
        "id": "Mercury_1", "answerKey": "B", "question": {"stem": ARC_QUESTION, "choices": [
            {"label": "A", "text": "radiation"}, {"label": "B", "text": "convection"}]}}) + "\n")
    config = tmp / "study.yaml"
    config.write_text(json.dumps({
        "name": "c",
        "ingest": {"data_dir": str(tmp / "data"), "heldout": 0, "sources": [{"name": "commonsense_qa"}]},
        "corrupt": {"ratios": [0.0]},
        "train": {"model": {"source": "tiny-random"}},
        "evaluate": {"benchmarks": [{"name": "arc_challenge"}]},
    }))
    return config


def test_faco_ingest_refuses_contaminated_sources(tmp_path: Path) -> None:
    config = _mirror(tmp_path)
    out = tmp_path / "ingest"
    proc = subprocess.run([str(FACO), "ingest", str(config), "--out", str(out)], capture_output=True, text=True)
    assert proc.returncode == 4, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if "contamination" in ln]
    assert len(lines) == 1
    assert "'commonsense_qa'" in lines[0] and "'arc_challenge'" in lines[0] and "1 training question" in lines[0]
    assert "ingest.allow_contamination" in lines[0]
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".ingest")]


def test_allowed_contamination_is_reported_in_the_manifest(tmp_path: Path) -> None:
    config = _mirror(tmp_path)
    out = tmp_path / "ingest"
    proc = subprocess.run(
        [str(FACO), "ingest", str(config), "--out", str(out), "--set", "ingest.allow_contamination=true"],
        capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr
    meta = json.loads((out / "manifest.json").read_text())["meta"]
    assert meta["contamination"] == {"commonsense_qa/arc_challenge": {"records": 1, "exact": 1, "ngram13": 1}}
    assert "contamination allowed: commonsense_qa/arc_challenge: 1 training questions" in proc.stderr


def test_winogrande_source_is_not_the_benchmark() -> None:
    """Until 0.2 the winogrande source file was byte-identical to the benchmark's."""
    st = parse_config(json.dumps({
        "name": "w",
        "ingest": {"data_dir": str(ROOT / "data"), "sources": [{"name": "winogrande", "split": "validation"}]},
        "corrupt": {"ratios": [0.0]},
        "train": {"model": {"source": "tiny-random"}},
        "evaluate": {"benchmarks": [{"name": "winogrande"}]},
    }))
    records, _ = ingest.load_source(st, SourceSpec(name="winogrande", split="validation"))
    assert len(records) > 600
    assert overlaps(records, ingest.benchmark_indexes(st)) == []


@pytest.mark.parametrize("name", ["mini", "smoke"])
def test_shipped_configs_train_on_no_benchmark_question(name: str, tmp_path: Path) -> None:
    out = ingest.run(load_config(ROOT / "configs" / f"{name}.yaml"), tmp_path / "ingest")  # refuses otherwise
    assert json.loads((out / "manifest.json").read_text())["meta"]["contamination"] == {}
