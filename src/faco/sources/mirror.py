"""Rows in each source's hub schema, read from the offline mirror (`data/sources/`) or the hub."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from faco.errors import FacoError, RecordError
from faco.sources.registry import NLI_LABELS, SOURCES, Row, RowRejected

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


@dataclass(frozen=True)
class BadRow:
    """A row that is not one (bad bytes, bad JSON, not an object, a field of the wrong shape): a reject."""

    reason: str


#: Where a row came from (`dev.jsonl:12`, `train[3]`) and the row, or why it is not one.
Located = tuple[str, "Row | BadRow"]
_WS = re.compile(r"[ \t\n\r]*")
_UNDECODED = re.compile("[\udc80-\udcff]")  # bytes that were not UTF-8, kept by surrogateescape


def _jsonl(path: Path) -> Iterator[Located]:
    """Every line of a JSON Lines file: a row, or why it is not one (never a replaced byte)."""
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            where = f"{path.name}:{lineno}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                yield where, BadRow(f"not UTF-8 text (byte {e.start} of the line)")
                continue
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except (json.JSONDecodeError, RecursionError) as e:
                yield where, BadRow(f"not valid JSON ({getattr(e, 'msg', 'nested too deeply')})")
                continue
            yield where, value if isinstance(value, dict) else BadRow("not a JSON object")


def _json_array(path: Path) -> Iterator[Located]:
    """Every item of a file holding one JSON array, with the line it starts on. An item that does not
    parse is a reject, and so is the rest of the file after it (a truncated file)."""
    text = path.read_bytes().decode("utf-8", errors="surrogateescape")
    pos = _WS.match(text).end()  # type: ignore[union-attr]
    if not text.startswith("[", pos):
        raise RecordError(f"{path}: not a JSON array of rows")
    decoder, line, counted = json.JSONDecoder(), 1, 0

    def where(at: int) -> str:
        nonlocal line, counted
        line += text.count("\n", counted, at)
        counted = at
        return f"{path.name}:{line}"

    pos = _WS.match(text, pos + 1).end()  # type: ignore[union-attr]
    while not text.startswith("]", pos):
        here = where(pos)
        try:
            value, end = decoder.raw_decode(text, pos)
        except (json.JSONDecodeError, RecursionError) as e:
            yield here, BadRow(f"not valid JSON ({getattr(e, 'msg', 'nested too deeply')}); the file ends here")
            return
        if _UNDECODED.search(text, pos, end):
            yield here, BadRow("not UTF-8 text")
        else:
            yield here, value if isinstance(value, dict) else BadRow("not a JSON object")
        pos = _WS.match(text, end).end()  # type: ignore[union-attr]
        if text.startswith(",", pos):
            pos = _WS.match(text, pos + 1).end()  # type: ignore[union-attr]
        elif not text.startswith("]", pos):
            yield where(pos), BadRow("not valid JSON (expected ',' or ']'); the file ends here")
            return


def _stem_choices(row: Row) -> Row:
    """ARC-style `{question: {stem, choices: [{label, text}]}}` -> hub `question` + `choices` lists."""
    q = row.get("question")
    if not isinstance(q, dict):
        return row
    choices = q.get("choices") or []
    if not isinstance(choices, list) or not all(isinstance(c, dict) for c in choices):
        raise RowRejected("question.choices: not a list of {label, text} objects")
    out = {k: v for k, v in row.items() if k != "question"}
    out["question"] = q.get("stem")
    out["choices"] = {"label": [c.get("label") for c in choices], "text": [c.get("text") for c in choices]}
    return out


def _obqa(row: Row) -> Row:
    out = _stem_choices(row)
    out["question_stem"] = out.pop("question", None)
    return out


def _winogrande(row: Row) -> Row:
    """llm-foundry `{context_options, continuation, gold}` -> hub `{sentence, option1, option2, answer}`."""
    options = row.get("context_options")
    if not (isinstance(options, list) and len(options) >= 2 and all(isinstance(o, str) for o in options[:2])):
        raise RowRejected("context_options: not a list of two texts")
    gold, cont = row.get("gold"), row.get("continuation", "")
    if not isinstance(gold, int) or isinstance(gold, bool):
        raise RowRejected(f"gold: not 0 or 1 ({gold!r})")
    if not isinstance(cont, str):
        raise RowRejected("continuation: not text")
    a, b = options[:2]
    i = 0
    while i < min(len(a), len(b)) and a[i] == b[i]:
        i += 1
    i = a.rfind(" ", 0, i) + 1  # back to a word boundary
    return {
        "sentence": f"{a[:i]}_ {cont.strip()}".strip(),
        "option1": a[i:].strip(),
        "option2": b[i:].strip(),
        "answer": str(gold + 1),
    }


def _multinli(row: Row) -> Row:
    """GLUE-style `{idx, premise, hypothesis, label: "neutral"}` -> integer label as on the hub."""
    label = row.get("label")
    return {**row, "label": NLI_LABELS.index(label) if isinstance(label, str) and label in NLI_LABELS else label}


_CONVERT: dict[str, Callable[[Row], Row]] = {
    "commonsense_qa": _stem_choices,
    "qasc": _stem_choices,
    "qasc_openbook": _stem_choices,
    "openbookqa": _obqa,
    "winogrande": _winogrande,
    "multinli": _multinli,
}


def _in_mbpp_split(row: Row, split: str) -> bool:
    """Whether an MBPP row's task id falls in `split`'s range (a row without an integer id is in every
    split, where it is rejected)."""
    lo, hi = _MBPP_SPLITS[split]
    tid = row.get("task_id")
    return not isinstance(tid, int) or isinstance(tid, bool) or lo <= tid <= hi


def mirror_rows(source: str, split: str, data_dir: Path) -> Iterator[Located]:
    """The mirror's rows of `source`/`split`, converted to the hub schema, each with where it came from
    (`file:line`); a row that cannot be converted comes as a BadRow naming the field."""
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
    rows = _json_array(path) if source == "conala" else _jsonl(path)
    convert = _CONVERT.get(source, lambda r: r)
    for where, row in rows:
        if isinstance(row, BadRow) or (source == "mbpp" and not _in_mbpp_split(row, split)):
            if isinstance(row, BadRow):
                yield where, row
            continue
        try:
            yield where, convert(row)
        except RowRejected as e:
            yield where, BadRow(str(e))


def hub_rows(
    source: str, split: str, revision: str | None = None, data_files: str | None = None
) -> Iterator[Located]:
    """Rows from the Hugging Face hub (needs network, or a populated HF cache), or from a local
    export of the same dataset in the hub schema (`data_files`: JSON, JSONL or Parquet), each with
    where it came from (`split[i]`, `file[i]`)."""
    import datasets

    if data_files is not None:
        path = Path(data_files)
        if not path.is_file():
            raise FacoError(f"{path}: data_files not found (source {source!r})")
        builder = "parquet" if path.suffix == ".parquet" else "json"
        try:
            ds: Any = datasets.load_dataset(builder, data_files={split: str(path)}, split=split)
        except Exception as e:  # pyarrow and datasets raise many types for a file they cannot read
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise RecordError(f"{path}: not readable as {builder} rows in the hub schema of {source!r} "
                              f"({type(e).__name__}: {first})") from None
        label = path.name
    elif SOURCES[source].parquet_config is not None:  # a script dataset: its hub Parquet conversion
        files = SOURCES[source].parquet_files(split, revision)
        ds = datasets.load_dataset("parquet", data_files={split: files}, split=split, token=os.environ.get("HF_TOKEN"))
        label = split
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
        label = split
    for i, row in enumerate(ds):
        yield f"{label}[{i}]", row if isinstance(row, dict) else BadRow("not an object")
