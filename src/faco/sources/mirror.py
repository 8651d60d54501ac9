"""Rows in each source's hub schema, read from the offline mirror (`data/sources/`) or the hub."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from faco.errors import FacoError
from faco.sources.registry import NLI_LABELS, SOURCES, Row

# source -> split -> file under data/sources/<source>/ (the mirror's split names follow the hub's).
MIRROR_FILES: dict[str, dict[str, str]] = {
    "commonsense_qa": {"train": "train_rand_split.jsonl", "validation": "dev_rand_split.jsonl"},
    "openbookqa": {"train": "train.jsonl"},
    "qasc": {"validation": "dev.jsonl"},
    "qasc_openbook": {"validation": "dev.jsonl"},
    "aqua_rat": {"validation": "dev.json", "test": "test.json"},
    "winogrande": {"validation": "dev_source_half.jsonl"},  # the half of dev not in the benchmark
    "copa": {"train": "train.jsonl"},  # ids 1-400; the benchmark twin is ids 401-500
    "mbpp": {"train": "mbpp.jsonl", "test": "mbpp.jsonl", "validation": "mbpp.jsonl", "prompt": "mbpp.jsonl"},
    "conala": {"train": "conala-train.json", "test": "conala-test.json"},
    # The source half of MNLI validation_matched (the other half is the offline MNLI benchmark).
    "multinli": {"validation_matched": "validation_matched_source.jsonl"},
}

# Sources reading another source's mirror folder (the same rows, normalised differently).
MIRROR_DIRS: dict[str, str] = {"qasc_openbook": "qasc"}

# MBPP "full": the published task-id ranges of each split.
_MBPP_SPLITS = {"prompt": (1, 10), "test": (11, 510), "validation": (511, 600), "train": (601, 974)}


def _jsonl(path: Path) -> Iterator[Row]:
    with path.open(encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as e:
                    yield {"__invalid__": f"{path.name}:{lineno}: not valid JSON ({e.msg})"}


def _stem_choices(row: Row) -> Row:
    """ARC-style `{question: {stem, choices: [{label, text}]}}` -> hub `question` + `choices` lists."""
    q = row.get("question")
    if not isinstance(q, dict):
        return row
    choices = q.get("choices") or []
    out = {k: v for k, v in row.items() if k != "question"}
    out["question"] = q.get("stem")
    out["choices"] = {"label": [c.get("label") for c in choices], "text": [c.get("text") for c in choices]}
    return out


def _obqa(row: Row) -> Row:
    out = _stem_choices(row)
    out["question_stem"] = out.pop("question")
    return out


def _winogrande(row: Row) -> Row:
    """llm-foundry `{context_options, continuation, gold}` -> hub `{sentence, option1, option2, answer}`."""
    a, b = (row.get("context_options") or ["", ""])[:2]
    i = 0
    while i < min(len(a), len(b)) and a[i] == b[i]:
        i += 1
    i = a.rfind(" ", 0, i) + 1  # back to a word boundary
    cont = str(row.get("continuation", "")).strip()
    return {
        "sentence": f"{a[:i]}_ {cont}".strip(),
        "option1": a[i:].strip(),
        "option2": b[i:].strip(),
        "answer": str(int(row.get("gold", -9)) + 1),
    }


def _multinli(row: Row) -> Row:
    """GLUE-style `{idx, premise, hypothesis, label: "neutral"}` -> integer label as on the hub."""
    label = row.get("label")
    return {**row, "label": NLI_LABELS.index(label) if label in NLI_LABELS else label}


_CONVERT: dict[str, Callable[[Row], Row]] = {
    "commonsense_qa": _stem_choices,
    "qasc": _stem_choices,
    "qasc_openbook": _stem_choices,
    "openbookqa": _obqa,
    "winogrande": _winogrande,
    "multinli": _multinli,
}


def mirror_rows(source: str, split: str, data_dir: Path) -> Iterator[Row]:
    """The mirror's rows of `source`/`split`, converted to the hub schema."""
    files = MIRROR_FILES.get(source)
    if files is None:
        raise FacoError(f"source {source!r} has no offline mirror; use ingest.origin: hub (needs network)")
    if split not in files:
        raise FacoError(
            f"source {source!r}: split {split!r} is not in the offline mirror (has: {', '.join(files)})"
        )
    path = data_dir / "sources" / MIRROR_DIRS.get(source, source) / files[split]
    if not path.is_file():
        raise FacoError(f"{path}: mirror file missing (see data/README.md)")
    if path.suffix == ".json":
        rows: list[Row] = (
            json.loads(path.read_text(encoding="utf-8", errors="replace"))
            if source == "conala"
            else list(_jsonl(path))
        )
    else:
        rows = list(_jsonl(path))
    if source == "mbpp":
        lo, hi = _MBPP_SPLITS[split]
        rows = [r for r in rows if lo <= int(r.get("task_id", 0)) <= hi]
    convert = _CONVERT.get(source, lambda r: r)
    for row in rows:
        yield row if "__invalid__" in row else convert(row)


def hub_rows(
    source: str, split: str, revision: str | None = None, data_files: str | None = None
) -> Iterator[Row]:
    """Rows from the Hugging Face hub (needs network, or a populated HF cache), or from a local
    export of the same dataset in the hub schema (`data_files`: JSON, JSONL or Parquet)."""
    import datasets

    if data_files is not None:
        path = Path(data_files)
        if not path.is_file():
            raise FacoError(f"{path}: data_files not found (source {source!r})")
        builder = "parquet" if path.suffix == ".parquet" else "json"
        ds: Any = datasets.load_dataset(builder, data_files={split: str(path)}, split=split)
    elif SOURCES[source].parquet_config is not None:  # a script dataset: its hub Parquet conversion
        files = SOURCES[source].parquet_files(split, revision)
        ds = datasets.load_dataset("parquet", data_files={split: files}, split=split, token=os.environ.get("HF_TOKEN"))
    else:
        adapter = SOURCES[source]
        token = os.environ.get("HF_TOKEN")
        ds = datasets.load_dataset(
            adapter.hub_path,
            adapter.hub_name,
            split=split,
            revision=revision,
            token=token,
            **adapter.hub_kwargs,
        )
    yield from ds
