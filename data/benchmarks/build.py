"""Rebuild data/benchmarks/<name>/ for the twins that read a subset or a reformatted copy.

Usage: python data/benchmarks/build.py /work/shared/data   (deterministic: first-N rows only)
ARC, OpenBookQA and PIQA's two files were copied unchanged; PIQA's are joined here.
MNLI validation_matched is split by a seeded hash of each row's normalised premise into the `multinli`
source's mirror rows (data/sources/multinli/) and the `faco_mnli` benchmark's rows, so no premise (MNLI
pairs one premise with about three hypotheses) is in both.
WinoGrande dev is split the same way, by twin group (rows sharing a 13-gram stay together), into the
`winogrande` source's mirror rows and the `faco_winogrande` benchmark's rows.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import re
import shutil
import sys
import unicodedata
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent


def _write(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def mmlu(src: Path, per_subject: int = 100) -> None:
    for split, n in (("test", per_subject), ("dev", None)):
        for f in sorted((src / "mmlu" / split).glob(f"*_{split}.csv")):
            subject = f.name[: -len(f"_{split}.csv")]
            with f.open(newline="") as fh:
                rows = list(csv.reader(fh))[:n]
            _write(OUT / "mmlu" / split / f"{subject}.jsonl", [
                {"question": r[0], "subject": subject, "choices": r[1:5],
                 "answer": "ABCD".index(r[5].strip())} for r in rows
            ])


def copa(src: Path) -> None:
    rows = _jsonl(src / "copa" / "copa-dev-original500.jsonl")
    _write(OUT / "copa" / "train.jsonl", [r for r in rows if int(r["id"]) <= 400])
    _write(OUT / "copa" / "validation.jsonl", [r for r in rows if int(r["id"]) > 400])


def logiqa(src: Path) -> None:
    text = (src / "logiqa" / "Test.txt").read_text()
    blocks = [b.strip("\n").split("\n") for b in text.split("\n\n") if b.strip()]
    rows = [{"label": b[0].strip(), "context": b[1], "question": b[2],
             "options": [o[2:] if o[1:2] == "." else o for o in b[3:7]]} for b in blocks]
    _write(OUT / "logiqa" / "test.jsonl", rows)


def squad(src: Path, per_article: int = 20) -> None:
    data = json.loads((src / "squad_v1.1" / "squaddev_v1.1.json").read_text())["data"]
    rows = []
    for article in data:
        qas = [(p["context"], qa) for p in article["paragraphs"] for qa in p["qas"]][:per_article]
        rows += [{"id": qa["id"], "title": article["title"], "context": ctx, "question": qa["question"],
                  "answers": sorted({a["text"] for a in qa["answers"]})} for ctx, qa in qas]
    _write(OUT / "squad" / "validation.jsonl", rows)


def bigbench(src: Path, per_subtask: int) -> None:
    """BIG-bench JSON tasks -> the `hails/bigbench` row format (inputs, targets, multiple_choice_targets)."""
    for task, n in (("conceptual_combinations", None), ("elementary_math_qa", per_subtask),
                    ("logical_deduction", per_subtask)):
        rows = []
        for f in sorted((src / "bigbench" / task).glob("*/task.json")):
            spec = json.loads(f.read_text())
            in_pre = spec.get("example_input_prefix", "\nQ: ")
            out_pre = spec.get("example_output_prefix", "\nA: ")
            choice_pre = spec.get("choice_prefix", "\n  choice: ")
            append = spec.get("append_choices_to_input", True)
            for ex in spec["examples"][:n]:
                choices = list(ex["target_scores"])
                text = spec.get("task_prefix", "") + in_pre + ex["input"]
                if append:
                    text += "".join(choice_pre + c for c in choices)
                rows.append({"subtask": f.parent.name, "inputs": (text + out_pre).strip(),
                             "targets": [c for c in choices if ex["target_scores"][c] == 1],
                             "multiple_choice_targets": choices})
        _write(OUT / "bigbench" / f"{task}.jsonl", rows)


def simple(src: Path) -> None:
    _write(OUT / "lambada" / "lambada_test.jsonl", _jsonl(src / "lambada" / "lambada_test.jsonl")[:2000])
    _write(OUT / "hellaswag" / "validation.jsonl",
           _jsonl(src / "hellaswag" / "hellaswag_val_preprocessed.jsonl")[:2000])
    _write(OUT / "boolq" / "validation.jsonl", [
        {"idx": int(r["idx"]), "passage": r["passage"], "question": r["question"],
         "label": int(r["answer"] == "True")} for r in _jsonl(src / "boolq" / "dev_normalised.jsonl")[:1000]
    ])
    shutil.copy(src / "mathqa" / "test_sample1000_math-evaluation-harness.jsonl",
                OUT / "mathqa" / "test.jsonl")
    with gzip.open(src / "humaneval" / "HumanEval.jsonl.gz", "rt") as fh:
        _write(OUT / "humaneval" / "test.jsonl", [json.loads(line) for line in fh if line.strip()])


def piqa() -> None:
    """Join the copied `valid.jsonl` with its line-aligned `valid-labels.lst`."""
    labels = (OUT / "piqa" / "valid-labels.lst").read_text().split()
    rows = _jsonl(OUT / "piqa" / "valid.jsonl")
    _write(OUT / "piqa" / "validation.jsonl",
           [{**r, "label": int(x)} for r, x in zip(rows, labels, strict=True)])


MNLI_LABELS = ("entailment", "neutral", "contradiction")


def mnli_half(premise: str) -> str:
    """`source` or `benchmark`: a seeded hash of the row's normalised premise (casefolded NFKC words)
    splits MNLI validation_matched in two, so every hypothesis of one premise lands in the same half."""
    norm = " ".join(re.sub(r"[\W_]+", " ", unicodedata.normalize("NFKC", premise).casefold()).split())
    digest = hashlib.sha256(f"faco-mnli-premise-split:{norm}".encode()).hexdigest()
    return "source" if int(digest[:8], 16) % 2 == 0 else "benchmark"


def multinli(src: Path) -> None:
    """MNLI validation_matched, split by `mnli_half` into halves with no premise in common: the
    `multinli` source's mirror rows (verbatim) and the `faco_mnli` benchmark's rows (label as GLUE's 0/1/2)."""
    rows = _jsonl(src / "multinli" / "validation_matched.jsonl")
    _write(OUT.parent / "sources" / "multinli" / "validation_matched_source.jsonl",
           [r for r in rows if mnli_half(r["premise"]) == "source"])
    _write(OUT / "multinli" / "validation_matched_benchmark.jsonl", [
        {**r, "label": MNLI_LABELS.index(r["label"])} for r in rows if mnli_half(r["premise"]) == "benchmark"
    ])


def _words(text: str) -> list[str]:
    return re.sub(r"[\W_]+", " ", text.casefold()).split()


def winogrande(src: Path) -> None:
    """WinoGrande dev split into disjoint halves by twin group: rows that share a 13-gram of words
    (a twin pair differs in one or two words) are joined, and each group goes to the half a seeded
    hash of its first row's index picks."""
    rows = _jsonl(src / "winogrande" / "dev_llmfoundry_format.jsonl")
    parent = list(range(len(rows)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[tuple[str, ...], int] = {}
    for i, r in enumerate(rows):
        for option in r["context_options"]:
            words = _words(f"{option} {r['continuation']}")
            for k in range(len(words) - 12):
                j = owner.setdefault(tuple(words[k : k + 13]), i)
                parent[find(i)] = find(j)
    groups: dict[int, list[int]] = {}
    for i in range(len(rows)):
        groups.setdefault(find(i), []).append(i)
    half = {}
    for members in groups.values():
        digest = hashlib.sha256(f"faco-winogrande-split:{min(members)}".encode()).hexdigest()
        for i in members:
            half[i] = "source" if int(digest[:8], 16) % 2 == 0 else "benchmark"
    _write(OUT.parent / "sources" / "winogrande" / "dev_source_half.jsonl",
           [r for i, r in enumerate(rows) if half[i] == "source"])
    _write(OUT / "winogrande" / "dev.jsonl", [r for i, r in enumerate(rows) if half[i] == "benchmark"])


def hans(src: Path, per_subcase: int = 50) -> None:
    """A seeded, stratified HANS subset: per_subcase items of each of the 30 subcases, interleaved
    round-robin by subcase so any first-N prefix (a config's `limit`) stays stratified; label as the
    hub copy's 0 entailment / 1 non-entailment."""
    import random

    by_subcase: dict[str, list[dict[str, Any]]] = {}
    for r in _jsonl(src / "hans" / "hans_generated_seed0.jsonl"):
        by_subcase.setdefault(r["subcase"], []).append(r)
    rng = random.Random(0)
    picked = {k: rng.sample(v, per_subcase) for k, v in sorted(by_subcase.items())}
    rows = [{"pairID": r["pairID"], "premise": r["premise"], "hypothesis": r["hypothesis"],
             "label": 0 if r["label"] == "entailment" else 1, "heuristic": r["heuristic"],
             "subcase": r["subcase"], "template": r["template"]}
            for i in range(per_subcase) for k in sorted(picked) for r in [picked[k][i]]]
    _write(OUT / "hans" / "validation.jsonl", rows)


def main(src: Path) -> None:
    for name in ("winogrande", "mathqa"):
        (OUT / name).mkdir(exist_ok=True)
    simple(src)
    piqa()
    mmlu(src)
    copa(src)
    logiqa(src)
    squad(src)
    bigbench(src, per_subtask=200)
    multinli(src)
    winogrande(src)
    hans(src)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
