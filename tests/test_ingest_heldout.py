"""Ingest's held-out split: a seeded share of every source in `heldout.jsonl` (the schema of
`sources.jsonl`), disjoint from the training pool by id and by normalised question, recorded in the
manifest, the same on every run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from faco.artifacts import read_manifest
from faco.config import Study, parse_config
from faco.contamination import normalise
from faco.errors import ConfigError
from faco.paths import repo_root
from faco.records import SourceRecord, read_jsonl
from faco.stages import ingest

DATA = (repo_root() or Path.cwd()) / "data"
SOURCES = [
    {"name": "commonsense_qa", "split": "train"},
    {"name": "openbookqa", "split": "train"},
    {"name": "qasc", "split": "validation"},
]


def study(data: Path = DATA, sources: list[dict[str, Any]] | None = None, **ingest_cfg: Any) -> Study:
    cfg = {
        "name": "t",
        "ingest": {"data_dir": str(data), "per_source_cap": 20, "sources": sources or SOURCES, **ingest_cfg},
        "corrupt": {"ratios": [0.0]},
        "train": {"model": {"source": "tiny-random"}},
        "evaluate": {"benchmarks": [{"name": "piqa"}]},
    }
    return parse_config(json.dumps(cfg))


def records(path: Path) -> list[SourceRecord]:
    return list(read_jsonl(path, SourceRecord))


def test_heldout_is_a_disjoint_share_of_every_source(tmp_path: Path) -> None:
    out = ingest.run(study(), tmp_path / "ingest")
    train, held = records(out / "sources.jsonl"), records(out / "heldout.jsonl")
    for spec in SOURCES:  # 20 % of what is taken: 20 trained + 5 held out
        assert sum(r.source == spec["name"] for r in train) == 20
        assert sum(r.source == spec["name"] for r in held) == 5
    assert not {r.id for r in train} & {r.id for r in held}
    assert not {normalise(r.question) for r in train} & {normalise(r.question) for r in held}
    meta = read_manifest(out)["meta"]
    assert meta["heldout"] == 15 and meta["records"] == 60
    assert {n: s["heldout"] for n, s in meta["sources"].items()} == {s["name"]: 5 for s in SOURCES}


def test_heldout_is_deterministic_and_seeded(tmp_path: Path) -> None:
    a = ingest.run(study(), tmp_path / "a")
    b = ingest.run(study(), tmp_path / "b")
    c = ingest.run(study(seed=1), tmp_path / "c")
    for name in ("sources.jsonl", "heldout.jsonl"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    assert (a / "heldout.jsonl").read_bytes() != (c / "heldout.jsonl").read_bytes()


def test_heldout_count_and_off(tmp_path: Path) -> None:
    counted = ingest.run(study(heldout=7), tmp_path / "count")
    held = records(counted / "heldout.jsonl")
    assert [sum(r.source == s["name"] for r in held) for s in SOURCES] == [7, 7, 7]
    off = ingest.run(study(heldout=0), tmp_path / "off")
    assert records(off / "heldout.jsonl") == []
    # with nothing held out, training is the plain seeded sample of each source
    st = study(heldout=0)
    expected = [
        r.id for spec in st.ingest.sources
        for r in ingest.sample(ingest.load_source(st, spec)[0], 20, 0, spec.name)
    ]
    assert [r.id for r in records(off / "sources.jsonl")] == expected


def test_a_repeated_question_is_never_on_both_sides(tmp_path: Path) -> None:
    """Rows with other ids but the same question (up to case and punctuation) go to one side."""
    src = tmp_path / "sources" / "commonsense_qa"
    src.mkdir(parents=True)
    rows = []
    for i in range(30):
        stem = f"Where would you find item number {i // 3}?"  # each question three times
        stem = stem.upper() if i % 3 == 1 else stem.replace("?", " ?") if i % 3 == 2 else stem
        rows.append({
            "id": f"q{i}",
            "answerKey": "A",
            "question": {"stem": stem, "choices": [{"label": "A", "text": "here"}, {"label": "B", "text": "there"}]},
        })
    (src / "train_rand_split.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = ingest.run(study(tmp_path, [{"name": "commonsense_qa", "limit": 30}], heldout=0.25), tmp_path / "ingest")
    train, held = records(out / "sources.jsonl"), records(out / "heldout.jsonl")
    assert held and len(held) % 3 == 0 and len(train) + len(held) == 30
    assert not {normalise(r.question) for r in train} & {normalise(r.question) for r in held}


def test_heldout_config_values() -> None:
    assert study().ingest.heldout == 0.2
    with pytest.raises(ConfigError, match=r"ingest\.heldout: .*whole number \(got 1\.5\)"):
        study(heldout=1.5)
    with pytest.raises(ConfigError, match=r"ingest\.heldout"):
        study(heldout=-0.1)
