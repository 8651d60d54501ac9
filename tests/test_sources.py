"""Ingest: the nine FACO sources through the hub path (rows in each hub schema, loaded by `datasets`)
and the offline mirror; rejects with reasons; seeded sampling."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from faco import artifacts
from faco.config import SourceSpec, Study, parse_config
from faco.errors import FacoError
from faco.paths import repo_root
from faco.records import RejectRecord, SourceRecord, read_jsonl
from faco.sources import SOURCES
from faco.stages import ingest

DATA = (repo_root() or Path.cwd()) / "data"


def study(
    tmp: Path | None = None,
    origin: str = "mirror",
    sources: list[dict[str, Any]] | None = None,
    cap: int = 3000,
    seed: int = 0,
) -> Study:
    cfg = {
        "name": "t",
        "ingest": {
            "origin": origin,
            "data_dir": str(tmp or DATA),
            "per_source_cap": cap,
            "seed": seed,
            "sources": sources or [{"name": "commonsense_qa"}],
        },
        "corrupt": {"ratios": [0.0]},
        "train": {"model": {"source": "tiny-random"}},
        "evaluate": {"benchmarks": [{"name": "piqa"}]},
    }
    return parse_config(json.dumps(cfg))


# QASC's hub row; qasc_openbook reads the same rows.
QASC_ROW: dict[str, Any] = {
    "id": "x1",
    "question": "What do plants need?",
    "choices": {
        "text": ["light", "dark", "salt", "iron", "sand", "cold", "noise", "wind"],
        "label": list("ABCDEFGH"),
    },
    "answerKey": "A",
    "fact1": "Plants need light to grow.",
    "fact2": "Sunlight is light.",
    "combinedfact": "Plants need sunlight.",
    "formatted_question": "What do plants need? (A) light ...",
}

# One row per source in its Hugging Face hub schema (field names and types as on the hub).
HUB_ROWS: dict[str, dict[str, Any]] = {
    "sciq": {
        "question": "What gas do plants absorb?",
        "distractor3": "helium",
        "distractor1": "oxygen",
        "distractor2": "neon",
        "correct_answer": "carbon dioxide",
        "support": "Plants take in carbon dioxide for photosynthesis.",
    },
    "commonsense_qa": {
        "id": "c1",
        "question": "Where do you keep milk?",
        "question_concept": "milk",
        "choices": {"label": ["A", "B", "C"], "text": ["fridge", "oven", "garage"]},
        "answerKey": "A",
    },
    "openbookqa": {
        "id": "7-980",
        "question_stem": "The sun is responsible for",
        "choices": {
            "text": ["puppies learning", "plants sprouting", "rocks", "snow"],
            "label": ["A", "B", "C", "D"],
        },
        "answerKey": "B",
        "fact1": "the sun is the source of energy for plants",
        "humanScore": 1.0,
        "clarity": 2.0,
        "turkIdAnonymized": "b356d338b7",
    },
    "winogrande": {
        "sentence": "Sarah was a better surgeon than Maria so _ got the harder cases.",
        "option1": "Sarah",
        "option2": "Maria",
        "answer": "1",
    },
    "aqua_rat": {
        "question": "2 + 3 = ?",
        "options": ["A)4", "B)5", "C)6", "D)7", "E)8"],
        "rationale": "2 + 3 is 5.\nAnswer: B",
        "correct": "B",
    },
    "quartz": {
        "id": "q1",
        "question": "If you run faster, your heart beats",
        "choices": {"text": ["faster", "slower"], "label": ["A", "B"]},
        "answerKey": "A",
        "para": "The faster you exercise, the faster your heart beats.",
        "para_id": "p1",
        "para_anno": {"effect_prop": "speed"},
        "question_anno": {"more_effect_dir": "faster"},
    },
    "qasc": QASC_ROW,
    "copa": {  # aps/super_glue copa
        "premise": "My body cast a shadow over the grass.",
        "choice1": "The sun was rising.",
        "choice2": "The grass was cut.",
        "question": "cause",
        "idx": 0,
        "label": 0,
    },
    "mbpp": {
        "task_id": 601,
        "text": "Write a function to add two numbers.",
        "code": "def add(a, b):\n    return a + b",
        "test_list": ["assert add(1, 2) == 3"],
        "test_setup_code": "",
        "challenge_test_list": [],
    },
    "conala": {
        "question_id": 41067960,
        "intent": "How to join a list?",
        "rewritten_intent": "join list `x` with commas",
        "snippet": "','.join(x)",
    },
    "qasc_openbook": QASC_ROW,  # the same hub rows as qasc
    "multinli": {  # nyu-mll/multi_nli: label is a ClassLabel (0 entailment, 1 neutral, 2 contradiction)
        "promptID": 31193,
        "pairID": "31193n",
        "premise": "Conceptually cream skimming has two basic dimensions - product and geography.",
        "premise_binary_parse": "( ( Conceptually ( cream skimming ) ) ... )",
        "premise_parse": "(ROOT (S ...))",
        "hypothesis": "Product and geography are what make cream skimming work. ",
        "hypothesis_binary_parse": "( ( ( Product and ) geography ) ... )",
        "hypothesis_parse": "(ROOT (S ...))",
        "genre": "government",
        "label": 1,
    },
}

EXPECTED = {  # source -> (domain, answer, explanation substring or None)
    "sciq": ("knowledge", "carbon dioxide", "photosynthesis"),
    "commonsense_qa": ("commonsense", "fridge", None),
    "openbookqa": ("commonsense", "plants sprouting", "source of energy"),
    "winogrande": ("commonsense", "Sarah", None),
    "aqua_rat": ("reasoning", "5", "2 + 3 is 5"),
    "quartz": ("reasoning", "faster", "heart beats"),
    "qasc": ("knowledge", "light", "Sunlight is light"),
    "mbpp": ("programming", "def add(a, b):\n    return a + b", None),
    "conala": ("programming", "','.join(x)", None),
    "multinli": ("nli", "neutral", None),
    "copa": ("commonsense", "The sun was rising.", None),
    "qasc_openbook": ("knowledge", "light", "Sunlight is light"),
}


def test_every_faco_source_has_an_adapter_with_its_hub_dataset() -> None:
    assert set(SOURCES) == set(HUB_ROWS)
    assert SOURCES["openbookqa"].hub_name == "additional"  # fact1 only exists there
    assert SOURCES["winogrande"].hub_name == "winogrande_xl"
    assert SOURCES["mbpp"].hub_name == "full"
    assert SOURCES["conala"].hub_name == "curated"
    assert SOURCES["aqua_rat"].hub_name == "raw"


@pytest.mark.parametrize("name", sorted(HUB_ROWS))
def test_hub_path_through_datasets(tmp_path: Path, name: str) -> None:
    """Rows in the hub schema, loaded by `datasets` from a local export, become the right records."""
    export = tmp_path / f"{name}.jsonl"
    export.write_text(json.dumps(HUB_ROWS[name]) + "\n" + json.dumps(HUB_ROWS[name]) + "\n")
    st = study(origin="hub", sources=[{"name": name, "data_files": str(export)}])
    records, rejects = ingest.load_source(st, st.ingest.sources[0])
    domain, answer, expl = EXPECTED[name]
    rec = records[0]
    assert (rec.source, rec.domain, rec.answer) == (name, domain, answer)
    if rec.kind == "mc":
        assert rec.choices[rec.answer_index or 0] == answer and len(rec.choices) >= 2
    assert (expl is None and rec.explanation is None) or (expl in (rec.explanation or ""))
    # The second, identical row is either a duplicate-id reject or (sources without ids) a new record.
    assert len(records) + len(rejects) == 2
    assert all("duplicate" in r.reason for r in rejects)


def test_hub_export_missing_is_one_clear_error(tmp_path: Path) -> None:
    st = study(origin="hub", sources=[{"name": "sciq", "data_files": str(tmp_path / "nope.jsonl")}])
    with pytest.raises(FacoError, match=r"nope\.jsonl: data_files not found"):
        ingest.load_source(st, st.ingest.sources[0])


MIRRORED = [  # source, split, at least this many valid rows, gold explanation expected
    ("commonsense_qa", "train", 9000, False),
    ("commonsense_qa", "validation", 1200, False),
    ("openbookqa", "train", 4900, False),
    ("qasc", "validation", 900, True),
    ("aqua_rat", "validation", 240, True),
    ("aqua_rat", "test", 240, True),
    ("winogrande", "validation", 650, False),  # the source half of dev (the other half is the benchmark)
    ("mbpp", "train", 374, False),
    ("conala", "train", 2300, False),
    ("conala", "test", 490, False),
    ("multinli", "validation_matched", 4967, False),  # the source half (by premise)
    ("copa", "train", 400, False),  # SuperGLUE train (the benchmark twin is its validation split)
    ("qasc_openbook", "validation", 900, True),
]


@pytest.mark.parametrize(("name", "split", "minimum", "explained"), MIRRORED)
def test_mirror_sources(name: str, split: str, minimum: int, explained: bool) -> None:
    st = study()
    records, rejects = ingest.load_source(st, SourceSpec(name=name, split=split))
    assert len(records) >= minimum
    assert len(rejects) <= 0.02 * (len(records) + len(rejects))
    assert len({r.id for r in records}) == len(records)
    assert all(r.source == name and r.domain == SOURCES[name].domain for r in records)
    if explained:
        assert sum(bool(r.explanation) for r in records) >= 0.95 * len(records)
    for r in records:
        if r.kind == "mc":
            assert r.answer_index is not None and r.choices[r.answer_index] == r.answer


def test_mirror_conversions_keep_meaning() -> None:
    st = study()
    wino, _ = ingest.load_source(st, SourceSpec(name="winogrande", split="validation"))
    first = wino[
        0
    ]  # "Sarah was a much better surgeon than Maria so _ always got the easier cases." gold=Maria
    assert "_" in first.question and set(first.choices) == {"Sarah", "Maria"}
    assert first.question.startswith("Sarah was a much better surgeon than Maria so _")
    qasc, _ = ingest.load_source(st, SourceSpec(name="qasc", split="validation"))
    assert qasc[0].explanation and "temperature and moisture" in qasc[0].explanation
    # Open book: the same row with both facts in the question; the answer is to be read off them.
    (first_open, *_), _ = ingest.load_source(st, SourceSpec(name="qasc_openbook", split="validation"))
    assert first_open.question == f"Facts: {qasc[0].explanation}\nQuestion: {qasc[0].question}"
    assert (first_open.choices, first_open.answer) == (qasc[0].choices, qasc[0].answer)
    copa, _ = ingest.load_source(st, SourceSpec(name="copa", split="train"))
    assert copa[0].question == "My body cast a shadow over the grass. What was the cause?"
    assert copa[0].answer == "The sun was rising." and len(copa) == 400
    mbpp, _ = ingest.load_source(st, SourceSpec(name="mbpp", split="train"))
    assert {int(r.id.split(":")[1]) for r in mbpp} == set(range(601, 975))


def test_multinli_mirror_rows_become_three_way_questions() -> None:
    st = study()
    records, rejects = ingest.load_source(st, SourceSpec(name="multinli", split="validation_matched"))
    assert not rejects and len(records) == 4967
    first = records[0]  # idx 0 (its premise hashes to the source half), gold label neutral
    assert first.id == "multinli:idx0" and first.domain == "nli"
    assert first.question.startswith("Premise: The new rights are nice enough\n"
                                     "Hypothesis: Everyone really likes the newest benefits\n")
    assert first.choices == ["entailment", "neutral", "contradiction"]
    assert (first.answer, first.answer_index) == ("neutral", 1)
    counts = {c: sum(r.answer == c for r in records) for c in first.choices}
    assert counts == {"entailment": 1778, "neutral": 1555, "contradiction": 1634}


def test_multinli_bad_labels_are_rejected_with_reasons(tmp_path: Path) -> None:
    src = tmp_path / "sources" / "multinli"
    src.mkdir(parents=True)
    rows = [
        {"idx": 1, "premise": "A man sleeps.", "hypothesis": "A man is awake.", "label": "contradiction"},
        {"idx": 2, "premise": "A man sleeps.", "hypothesis": "Someone rests.", "label": "maybe"},
        {"idx": 3, "premise": "", "hypothesis": "Someone rests.", "label": "entailment"},
    ]
    (src / "validation_matched_source.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    st = study(tmp_path, sources=[{"name": "multinli", "split": "validation_matched"}])
    records, rejects = ingest.load_source(st, st.ingest.sources[0])
    assert [r.id for r in records] == ["multinli:idx1"] and records[0].answer == "contradiction"
    assert {r.row: r.reason for r in rejects} == {
        "validation_matched_source.jsonl:2": "label: not 0, 1 or 2 ('maybe')",
        "validation_matched_source.jsonl:3": "premise: empty",
    }
    hub = tmp_path / "hub.jsonl"
    hub.write_text(json.dumps({**HUB_ROWS["multinli"], "label": -1}) + "\n")
    st = study(origin="hub", sources=[{"name": "multinli", "data_files": str(hub)}])
    assert [r.reason for r in ingest.load_source(st, st.ingest.sources[0])[1]] == ["label: -1 (no gold label)"]


@pytest.mark.parametrize("name", ["sciq", "quartz"])
def test_sources_without_mirror_say_so(name: str) -> None:
    st = study()
    with pytest.raises(FacoError, match="no offline mirror"):
        ingest.load_source(st, SourceSpec(name=name))


def test_missing_mirror_split_is_named() -> None:
    with pytest.raises(FacoError, match="split 'train' is not in the offline mirror"):
        ingest.load_source(study(), SourceSpec(name="qasc", split="train"))


def _csqa(rid: str, stem: str, choices: list[str], key: str) -> str:
    row = {
        "answerKey": key,
        "id": rid,
        "question": {
            "question_concept": "x",
            "stem": stem,
            "choices": [{"label": chr(65 + i), "text": t} for i, t in enumerate(choices)],
        },
    }
    return json.dumps(row, ensure_ascii=False)


def test_bad_rows_are_counted_and_written_with_reasons(tmp_path: Path) -> None:
    src = tmp_path / "sources" / "commonsense_qa"
    src.mkdir(parents=True)
    lines = [
        _csqa("ok1", "Where is milk kept?", ["fridge", "oven"], "A").encode(),
        json.dumps({"answerKey": "A", "id": "nochoice", "question": {"stem": "Q?", "choices": []}}).encode(),
        _csqa("badkey", "Where?", ["here", "there"], "E").encode(),
        _csqa("empty", "   ", ["a", "b"], "A").encode(),
        _csqa("ok1", "Duplicate id?", ["yes", "no"], "A").encode(),
        _csqa("bytes", "Caf\u00e9?", ["x", "y"], "A").encode().replace("é".encode(), b"\xe9"),  # latin-1 byte
        b'{"answerKey": "A", "id": "cut", "question": {"stem": "trunc',
        _csqa("ok2", "What is ice?", ["frozen water", "fire"], "A").encode(),
    ]
    (src / "train_rand_split.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    out = ingest.run(study(tmp_path), tmp_path / "sources_out")
    recs = list(read_jsonl(out / "sources.jsonl", SourceRecord))
    rejects = list(read_jsonl(out / "rejects.jsonl", RejectRecord))
    assert [r.id for r in recs] == ["commonsense_qa:ok1", "commonsense_qa:ok2"]
    reasons = {r.row: r.reason for r in rejects}
    assert all(r.source == "commonsense_qa" for r in rejects)
    f = "train_rand_split.jsonl"
    assert reasons == {
        f"{f}:2": "choices: missing",
        f"{f}:3": "answer: not among the choices",
        f"{f}:4": "question: empty",
        f"{f}:5": "id: duplicate 'commonsense_qa:ok1'",
        f"{f}:6": "not UTF-8 text (byte 84 of the line)",  # the byte, never a replacement character
        f"{f}:7": reasons[f"{f}:7"],
    }
    assert reasons[f"{f}:7"].startswith("not valid JSON")
    stats = json.loads((out / "stats.json").read_text())["commonsense_qa"]
    assert (stats["rows"], stats["valid"], stats["rejected"], stats["kept"]) == (8, 2, 6, 2)
    assert sum(stats["reject_reasons"].values()) == 6


def test_sampling_is_seeded_capped_and_in_source_order() -> None:
    st = study(cap=50, seed=3)
    records, _ = ingest.load_source(st, SourceSpec(name="commonsense_qa"))
    a = ingest.sample(records, 50, 3, "commonsense_qa")
    assert len(a) == 50 and a == ingest.sample(records, 50, 3, "commonsense_qa")
    assert [records.index(r) for r in a] == sorted(records.index(r) for r in a)
    assert [r.id for r in a] != [r.id for r in ingest.sample(records, 50, 4, "commonsense_qa")]
    assert ingest.sample(records[:10], 50, 3, "commonsense_qa") == records[:10]


def test_sampling_is_the_same_in_another_interpreter() -> None:
    """String-seeded `random.Random` does not depend on PYTHONHASHSEED or the machine."""
    code = (
        "from faco.stages import ingest; from faco.config import SourceSpec; import tests.test_sources as t;"
        "st=t.study(cap=20, seed=7); r,_=ingest.load_source(st, SourceSpec(name='openbookqa'));"
        "print(','.join(x.id for x in ingest.sample(r, 20, 7, 'openbookqa')))"
    )
    root = repo_root() or Path.cwd()
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(root)}
    other = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=root, check=True
    ).stdout.strip()
    st = study(cap=20, seed=7)
    records, _ = ingest.load_source(st, SourceSpec(name="openbookqa"))
    assert other == ",".join(r.id for r in ingest.sample(records, 20, 7, "openbookqa"))


FACO = str(Path(sys.executable).with_name("faco"))


def test_hostile_rows_through_faco_ingest_are_rejects_naming_line_and_field(tmp_path: Path) -> None:
    """`faco ingest` on mirror rows of every wrong shape: exit 0, each bad row a reject naming its file,
    line and field, counted in the manifest; a JSON-array file cut short keeps the items before the cut;
    an id another source split already gave is a duplicate."""
    csqa = tmp_path / "mirror" / "sources" / "commonsense_qa"
    csqa.mkdir(parents=True)
    lines = [
        _csqa("ok1", "Where is milk kept?", ["fridge", "oven"], "A").encode(),
        b"[1, 2]",
        json.dumps({"id": "c", "answerKey": "A", "question": {"stem": "Q?", "choices": "fridge, oven"}}).encode(),
        json.dumps({"id": "d", "answerKey": ["A"], "question": {"stem": "Q?", "choices": [
            {"label": "A", "text": "x"}, {"label": "B", "text": "y"}]}}).encode(),
        json.dumps({"id": {"x": 1}, "answerKey": "A", "question": {"stem": "Q?", "choices": [
            {"label": "A", "text": "x"}, {"label": "B", "text": "y"}]}}).encode(),
        _csqa("e", "Lone \ud800 surrogate?", ["a", "b"], "A").encode("utf-8", "surrogatepass"),
        _csqa("ok2", "What is ice?", ["frozen water", "fire"], "A").encode(),
    ]
    (csqa / "train_rand_split.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    (csqa / "dev_rand_split.jsonl").write_text(_csqa("ok1", "Where is milk stored?", ["fridge", "oven"], "A") + "\n"
                                               + _csqa("ok3", "What is steam?", ["hot water", "ice"], "A") + "\n")
    conala = tmp_path / "mirror" / "sources" / "conala"
    conala.mkdir()
    item = {"intent": "Sort a list", "rewritten_intent": "sort list `x`", "snippet": "sorted(x)", "question_id": 1}
    (conala / "conala-train.json").write_text("[\n" + json.dumps(item) + ",\n" + json.dumps({**item, "question_id": 2})
                                              + ',\n{"intent": "cut sho')
    sources = ("[{name: commonsense_qa, split: train}, {name: commonsense_qa, split: validation}, "
               "{name: conala, split: train}]")
    env = {**os.environ, "FACO_CACHE_DIR": str(tmp_path / ".cache")}
    proc = subprocess.run([FACO, "ingest", str(DATA.parent / "configs" / "smoke.yaml"), "--out", "src", "--set",
                           "ingest.data_dir=mirror", "--set", f"ingest.sources={sources}", "--set", "ingest.heldout=0",
                           "--set", "evaluate.benchmarks=[{name: piqa}]"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rejects = {r.row: r.reason for r in read_jsonl(tmp_path / "src" / "rejects.jsonl", RejectRecord)}
    f = "train_rand_split.jsonl"
    assert rejects == {
        f"{f}:2": "not a JSON object",
        f"{f}:3": "question.choices: not a list of {label, text} objects",
        f"{f}:4": "answerKey: not a label (a list)",
        f"{f}:5": "id: not text (a dict)",
        f"{f}:6": "not UTF-8 text (byte 82 of the line)",
        "dev_rand_split.jsonl:1": "id: duplicate 'commonsense_qa:ok1' (also in commonsense_qa/train)",
        "conala-train.json:4": "not valid JSON (Unterminated string starting at); the file ends here",
    }
    ids = [r.id for r in read_jsonl(tmp_path / "src" / "sources.jsonl", SourceRecord)]
    assert sorted(ids) == ["commonsense_qa:ok1", "commonsense_qa:ok2", "commonsense_qa:ok3", "conala:1-0", "conala:2-1"]
    stats = artifacts.read_manifest(tmp_path / "src")["meta"]["sources"]
    assert {k: v["rejected"] for k, v in stats.items()} == {  # a source with two splits: one entry each
        "commonsense_qa/train": 5, "commonsense_qa/validation": 1, "conala": 1}
