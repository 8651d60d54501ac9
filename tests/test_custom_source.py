"""Custom sources: one's own data (a local JSONL/JSON/Parquet file or a pinned hub dataset) through a field
mapping; one-line errors naming file, row and field; lineage, contamination guard and held-out split as
for built-in sources; free-form rows corrupted by the swap route."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from faco.config import parse_config
from faco.config_audit import CustomSource
from faco.errors import ConfigError, RecordError
from faco.records import PairRecord, SourceRecord, TrainRecord, read_jsonl
from faco.sources import custom

FACO = str(Path(sys.executable).with_name("faco"))
ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "data" / "examples" / "science_mc.jsonl"
MAPPING = {"id": "uid", "question": "query", "choices": "options", "answer": "label", "explanation": "rationale"}


def _mc(i: int, **row: Any) -> dict[str, Any]:
    return {"id": f"q{i}", "question": f"Which option is number {i}?", "choices": ["one", "two", "three"],
            "answer": i % 3, "explanation": f"Because {i}.", **row}


def _write(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _config(sources: list[dict[str, Any]], tmp: Path) -> str:
    return json.dumps({
        "name": "own", "ingest": {"per_source_cap": 40, "heldout": 4, "sources": sources,
                                  "data_dir": str(ROOT / "data")},
        "corrupt": {"ratios": [0.0, 0.5]}, "train": {"model": {"source": "tiny-random"}},
        "evaluate": {"benchmarks": [{"name": "heldout"}, {"name": "arc_challenge", "limit": 5}]}})


def _faco(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FACO_CACHE_DIR": str(cwd / ".cache")}
    env.pop("FACO_DEBUG", None)
    return subprocess.run([FACO, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_config_names_the_source_and_pins_hub_data(tmp_path: Path) -> None:
    def check(sources: list[dict[str, Any]], message: str) -> None:
        with pytest.raises(ConfigError, match=message):
            parse_config(_config(sources, tmp_path), "own.yaml")

    check([{"name": "nosuch"}], r"ingest.sources.0.name: unknown source 'nosuch'.*\(or describe your own data")
    check([{"name": "qasc", "custom": {"path": "x.jsonl"}}], "not a built-in source's name")
    check([{"name": "Mine", "custom": {"path": "x.jsonl"}}], "lower-case letters")
    check([{"name": "mine", "custom": {"hub": "org/data"}}], "custom.revision: a hub dataset needs a pinned revision")
    check([{"name": "mine", "custom": {"path": "x.jsonl", "hub": "org/data", "revision": "abc"}}], "exactly one of")
    check([{"name": "mine", "custom": {"path": "x.csv"}}], "not a .jsonl, .json or .parquet file")
    check([{"name": "mine", "revision": "abc", "custom": {"path": "x.jsonl"}}], "set custom.revision")
    check([{"name": "mine", "custom": {"path": "x.jsonl", "fields": {"qestion": "q"}}}], "qestion: unknown key")
    ok = parse_config(_config([{"name": "mine", "custom": {"hub": "org/data", "revision": "v1.0"}}], tmp_path))
    assert ok.ingest.sources[0].custom is not None and ok.ingest.sources[0].custom.revision == "v1.0"


def test_multiple_choice_rows_with_a_field_mapping() -> None:
    spec = CustomSource(path=str(EXAMPLE), fields=MAPPING)  # type: ignore[arg-type]
    parsed = custom.parse(spec, "science")
    assert len(parsed) == 150 and all(p.is_corrupted is None for p in parsed)
    first = parsed[0].record
    raw = json.loads(EXAMPLE.read_text().splitlines()[0])
    assert first.id == f"science:{raw['uid']}" and first.kind == "mc" and first.question == raw["query"]
    assert first.choices == raw["options"] and first.answer_index == "ABCDEFGH".index(raw["label"])
    assert first.answer == raw["options"][first.answer_index] and first.explanation == raw["rationale"]


@pytest.mark.parametrize("answer, index", [(2, 2), ("C", 2), ("three", 2), ("A", 0)])
def test_the_answer_is_an_index_a_letter_or_the_text(tmp_path: Path, answer: Any, index: int) -> None:
    path = _write(tmp_path / "d.jsonl", [_mc(0, answer=answer)])
    [p] = custom.parse(CustomSource(path=str(path)), "d")
    assert p.record.answer_index == index


def test_chat_and_prompt_response_rows_are_free_form(tmp_path: Path) -> None:
    chat = _write(tmp_path / "chat.jsonl", [
        {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"},
                      {"role": "assistant", "content": "4"}], "is_corrupted": False},
        {"messages": [{"role": "user", "content": "Capital of France?"}, {"role": "assistant", "content": "Rome"}],
         "is_corrupted": True}])
    a, b = custom.parse(CustomSource(path=str(chat), format="messages"), "chat")
    assert (a.record.kind, a.record.question, a.record.answer, a.record.id) == ("text", "Be brief.\n\n2+2?", "4",
                                                                              "chat:row1")
    assert b.is_corrupted is True and b.record.question == "Capital of France?"
    table = tmp_path / "pr.parquet"
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist([{"instruction": "Say hi", "output": "hi", "id": 7}]), table)
    spec = CustomSource(path=str(table), format="prompt_response", fields={"prompt": "instruction",  # type: ignore[arg-type]
                                                                           "response": "output"})
    [p] = custom.parse(spec, "pr")
    assert (p.record.id, p.record.question, p.record.answer) == ("pr:7", "Say hi", "hi")
    listed = tmp_path / "rows.json"
    listed.write_text(json.dumps([{"prompt": "x", "response": "y"}]))
    assert custom.parse(CustomSource(path=str(listed), format="prompt_response"), "l")[0].record.answer == "y"


BAD_ROWS = [
    ({"id": "q1", "choices": ["a", "b"], "answer": 0}, "d.jsonl:2: question: missing (the question)"),
    (_mc(1, answer="D"), "d.jsonl:2: answer: 'D' is not an option's index, letter or text"),
    (_mc(1, answer=5), "d.jsonl:2: answer: index 5 is not among the 3 choices"),
    (_mc(1, choices="one two"), "d.jsonl:2: choices: a list of at least two option texts is needed"),
    (_mc(1, choices=["one", "one"]), "d.jsonl:2: choices: two options have the same text"),
    (_mc(1, choices=["one", ""]), "d.jsonl:2: choices[1]: empty (the option)"),
    (_mc(1, question=3), "d.jsonl:2: question: the question must be a string (got int)"),
    (_mc(0), "d.jsonl:2: id: duplicate id 'q0' (first at"),
    (_mc(1, is_corrupted="yes"), "d.jsonl:2: is_corrupted: must be true or false"),
    ([1, 2], "d.jsonl:2: <row>: a JSON object is needed (got list)"),
]


@pytest.mark.parametrize("row, message", BAD_ROWS, ids=[m.split(": ", 1)[1][:30] for _, m in BAD_ROWS])
def test_a_bad_row_names_the_file_row_and_field(tmp_path: Path, row: Any, message: str) -> None:
    path = _write(tmp_path / "d.jsonl", [_mc(0), row])
    with pytest.raises(RecordError) as err:
        custom.parse(CustomSource(path=str(path)), "d")
    assert str(err.value).startswith(str(tmp_path / message.split(":", 1)[0]) + ":" + message.split(":", 1)[1])


def test_bad_chat_rows_and_files(tmp_path: Path) -> None:
    path = _write(tmp_path / "c.jsonl", [{"messages": [{"role": "assistant", "content": "hi"},
                                                      {"role": "user", "content": "yo"}]}])
    with pytest.raises(RecordError, match=r"c.jsonl:1: messages: one user message and then one assistant"):
        custom.parse(CustomSource(path=str(path), format="messages"), "c")
    (tmp_path / "b.jsonl").write_text('{"question": "x"\n')
    with pytest.raises(RecordError, match=r"b.jsonl:1: not valid JSON"):
        custom.parse(CustomSource(path=str(tmp_path / "b.jsonl")), "b")
    with pytest.raises(RecordError, match="custom source file not found"):
        custom.parse(CustomSource(path=str(tmp_path / "gone.jsonl")), "g")


def test_ingest_records_lineage_holds_out_and_guards_against_contamination(tmp_path: Path) -> None:
    source = {"name": "science", "custom": {"path": str(EXAMPLE), "fields": MAPPING}}
    (tmp_path / "own.yaml").write_text(_config([source], tmp_path))
    proc = _faco("ingest", "own.yaml", "--out", "ingest", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-1500:]
    kept = list(read_jsonl(tmp_path / "ingest" / "sources.jsonl", SourceRecord))
    held = list(read_jsonl(tmp_path / "ingest" / "heldout.jsonl", SourceRecord))
    assert len(kept) == 40 and len(held) == 4 and {r.source for r in kept + held} == {"science"}
    assert not {r.question for r in kept} & {r.question for r in held}
    raw = json.loads((tmp_path / "ingest" / "manifest.json").read_text())["meta"]["raw_inputs"]
    assert raw == [{"source": "science", "split": "train", "path": str(EXAMPLE), "size": EXAMPLE.stat().st_size,
                    "sha256": hashlib.sha256(EXAMPLE.read_bytes()).hexdigest()}]
    proc = _faco("lineage", "verify", "ingest", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-800:]
    arc = json.loads((ROOT / "data" / "benchmarks" / "arc" / "ARC-Challenge-Test.jsonl").read_text().splitlines()[0])
    copied = _write(tmp_path / "copied.jsonl", [_mc(i) for i in range(6)] + [
        {"id": "leak", "question": arc["question"]["stem"], "choices": ["w", "x", "y", "z"], "answer": 0}])
    leak = json.loads(_config([{"name": "mine", "custom": {"path": str(copied)}}], tmp_path))
    leak["ingest"]["heldout"] = 0
    leak["evaluate"]["benchmarks"] = [{"name": "arc_challenge", "limit": 5}]
    (tmp_path / "leak.yaml").write_text(json.dumps(leak))
    proc = _faco("ingest", "leak.yaml", "--out", "leak", cwd=tmp_path)
    assert proc.returncode == 4 and "contamination: source 'mine' shares 1 training questions with benchmark " \
        "'arc_challenge'" in proc.stderr.splitlines()[-1]
    assert not (tmp_path / "leak").exists()


def test_a_malformed_custom_row_stops_ingest_with_one_line_and_nothing_written(tmp_path: Path) -> None:
    bad = _write(tmp_path / "mine.jsonl", [_mc(0), _mc(1), {"id": "q2", "question": "?", "choices": ["a", "b"]}])
    (tmp_path / "own.yaml").write_text(_config([{"name": "mine", "custom": {"path": str(bad)}}], tmp_path))
    proc = _faco("ingest", "own.yaml", "--out", "ingest", cwd=tmp_path)
    assert proc.returncode == 4
    assert proc.stderr.strip().splitlines()[-1] == f"error: {bad}:3: answer: missing (the correct option)"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != ".cache") == ["mine.jsonl", "own.yaml"]


def test_free_form_rows_are_corrupted_by_swapping_responses(tmp_path: Path) -> None:
    rows = [{"prompt": f"Name fruit {i}.", "response": f"Fruit number {i} is a {f}."}
            for i, f in enumerate(["apple", "pear", "plum", "fig", "kiwi", "lime"])]
    data = _write(tmp_path / "fruit.jsonl", rows)
    cfg = json.loads(_config([{"name": "fruit", "custom": {"path": str(data), "format": "prompt_response"}}],
                             tmp_path))
    cfg["ingest"]["heldout"] = 0
    cfg["evaluate"]["benchmarks"] = [{"name": "arc_challenge", "limit": 5}]
    (tmp_path / "own.yaml").write_text(json.dumps(cfg))
    for args in (["ingest", "own.yaml", "--out", "ingest"], ["generate", "own.yaml", "--sources", "ingest", "--out",
                 "pairs"], ["corrupt", "own.yaml", "--pairs", "pairs", "--out", "splits"]):
        proc = _faco(*args, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-1500:]
    pairs = list(read_jsonl(tmp_path / "pairs" / "pairs.jsonl", PairRecord))
    given = {f"fruit:row{i + 1}": r["response"] for i, r in enumerate(rows)}
    assert len(pairs) == 6 and all(p.true.reasoning == given[p.id] for p in pairs)
    assert sorted(p.false.reasoning for p in pairs) == sorted(given.values())  # a derangement of the responses
    assert all(p.false.reasoning != p.true.reasoning for p in pairs)
    split = {r.id: r for r in read_jsonl(tmp_path / "splits" / "cr_0.5.jsonl", TrainRecord)}
    assert sum(r.is_corrupted for r in split.values()) == 3
    by_id = {p.id: p for p in pairs}
    assert all(r.response == (by_id[i].false if r.is_corrupted else by_id[i].true).reasoning for i, r in split.items())
    assert all(r.prompt == given_prompt for r, given_prompt in zip(
        [split[f"fruit:row{i + 1}"] for i in range(6)], [r["prompt"] for r in rows], strict=True))


def test_a_hub_dataset_is_read_at_its_revision_through_datasets(tmp_path: Path) -> None:
    """The hub path of a custom source, on a dataset folder in the hub's layout (offline: `datasets` reads a
    local folder the way it reads a hub repository's files)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "repo" / "data").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist([{"prompt": f"p{i}", "response": f"r{i}"} for i in range(3)]),
                   tmp_path / "repo" / "data" / "train-00000-of-00001.parquet")
    spec = CustomSource(hub=str(tmp_path / "repo"), revision="main", format="prompt_response")
    parsed = custom.parse(spec, "hubbed")
    assert [p.record.answer for p in parsed] == ["r0", "r1", "r2"] and parsed[0].row.endswith("@main train: row 1")
    from faco.lineage.raw import ingest_inputs

    study = parse_config(_config([{"name": "hubbed", "custom": spec.model_dump()}], tmp_path))
    assert ingest_inputs(study) == [{"source": "hubbed", "split": "train", "hub": str(tmp_path / "repo"),
                                     "config": None, "revision": "main"}]
