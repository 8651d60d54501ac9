"""Custom sources: a team's own data (a local JSONL/JSON/Parquet file, or a hub dataset at a pinned
revision) read through a field mapping into the records every stage uses.

Three row formats (`custom.format`, fields renamed by `custom.fields`; docs/audit.md):

- `mc`: `question`, `choices` (a list of option texts), `answer` (the correct option's index, letter
  or text), optional `explanation`: a multiple-choice record, which gets the full FACO treatment;
- `messages`: a chat (`[{role, content}]`: an optional system message, then one user and one
  assistant message): a free-form record whose prompt is the user message and response the assistant's;
- `prompt_response`: `prompt` and `response`: a free-form record.

Optional in every format: `id` (the row number otherwise) and `is_corrupted` (a known-bad flag, for
audit benchmarks on one's own data). Unlike a built-in source, whose bad hub rows become rejects, a
custom row that does not fit is an error naming the file, the row and the field: it is the user's
own data, and a silent drop would hide the mistake.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from faco.config import SourceSpec
from faco.config_audit import CustomSource
from faco.errors import RecordError
from faco.paths import repo_root
from faco.records import SourceRecord

Row = dict[str, Any]


class _Bad(Exception):
    """A field that does not fit: the message is `field: reason`."""


@dataclass(frozen=True)
class Parsed:
    """One row as a source record, with its known-bad flag when the row has one."""

    record: SourceRecord
    is_corrupted: bool | None
    row: str  # where it came from: `file:line` or `file: row N`


def resolve(path: str) -> Path:
    """A custom file: as given (absolute or from the working directory), else under the checkout."""
    p = Path(path)
    root = repo_root()
    if not p.is_absolute() and not p.exists() and root is not None and (root / p).exists():
        return root / p
    return p


def _jsonl(path: Path) -> Iterator[tuple[str, Any]]:
    with path.open("rb") as fh:
        for lineno, data in enumerate(fh, 1):
            where = f"{path}:{lineno}"
            try:
                line = data.decode("utf-8")
            except UnicodeDecodeError as e:
                raise RecordError(f"{where}: not UTF-8 text (byte {e.start} of the line)") from None
            if not line.strip():
                continue
            try:
                yield where, json.loads(line)
            except json.JSONDecodeError as e:
                raise RecordError(f"{where}: not valid JSON ({e.msg})") from None


def _table(path: Path) -> Iterator[tuple[str, Any]]:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            rows: Any = pq.read_table(path).to_pylist()
        except Exception as e:  # pyarrow raises its own types for a broken file
            raise RecordError(f"{path}: not a readable Parquet file ({type(e).__name__}: {e})") from None
    else:
        try:
            rows = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise RecordError(f"{path}: not a UTF-8 JSON file ({e})") from None
        if not isinstance(rows, list):
            raise RecordError(f"{path}: a .json custom source must be a list of rows")
    for n, row in enumerate(rows, 1):
        yield f"{path}: row {n}", row


def _hub(cfg: CustomSource, split: str) -> Iterator[tuple[str, Any]]:
    import datasets

    ds: Any = datasets.load_dataset(str(cfg.hub), cfg.hub_name, split=split, revision=cfg.revision,
                                    token=os.environ.get("HF_TOKEN"))
    for n, row in enumerate(ds, 1):
        yield f"{cfg.hub}@{cfg.revision} {split}: row {n}", row


def raw_rows(cfg: CustomSource, split: str) -> Iterator[tuple[str, Any]]:
    """(where, row) of every row: a local file's rows, or the hub dataset's split at its revision."""
    if cfg.hub is not None:
        yield from _hub(cfg, split)
        return
    path = resolve(str(cfg.path))
    if not path.is_file():
        raise RecordError(f"{path}: custom source file not found")
    yield from _jsonl(path) if path.suffix == ".jsonl" else _table(path)


def _text(row: Row, key: str, role: str, required: bool = True) -> str | None:
    value = row.get(key)
    if value is None:
        if required:
            raise _Bad(f"{key}: missing (the {role})")
        return None
    if not isinstance(value, str):
        raise _Bad(f"{key}: the {role} must be a string (got {type(value).__name__})")
    if not value.strip():
        if required:
            raise _Bad(f"{key}: empty (the {role})")
        return None
    if "\ufffd" in value:
        raise _Bad(f"{key}: undecodable text (U+FFFD)")
    return value.strip()


def answer_index(value: Any, choices: list[str], key: str) -> int:
    """The correct option: an index, a letter (A = 0) or an option's exact text (tried first)."""
    if isinstance(value, bool) or value is None:
        raise _Bad(f"{key}: missing (the correct option)" if value is None else f"{key}: not an option")
    if isinstance(value, int):
        if 0 <= value < len(choices):
            return value
        raise _Bad(f"{key}: index {value} is not among the {len(choices)} choices")
    text = str(value).strip()
    if text in choices:
        return choices.index(text)
    if len(text) == 1 and "A" <= text <= "Z" and ord(text) - 65 < len(choices):
        return ord(text) - 65
    raise _Bad(f"{key}: {text!r} is not an option's index, letter or text")


def _mc(row: Row, cfg: CustomSource) -> tuple[str, list[str], int, str | None]:
    f = cfg.fields
    question = str(_text(row, f.question, "question"))
    choices = row.get(f.choices)
    if choices is None:
        raise _Bad(f"{f.choices}: missing (the options)")
    if not isinstance(choices, list) or len(choices) < 2:
        raise _Bad(f"{f.choices}: a list of at least two option texts is needed")
    opts = [str(_text({f"{f.choices}[{i}]": c}, f"{f.choices}[{i}]", "option")) for i, c in enumerate(choices)]
    if len(set(opts)) < len(opts):
        raise _Bad(f"{f.choices}: two options have the same text")
    return question, opts, answer_index(row.get(f.answer), opts, f.answer), _text(row, f.explanation, "explanation",
                                                                                  required=False)


def _messages(row: Row, cfg: CustomSource) -> tuple[str, str]:
    key = cfg.fields.messages
    msgs = row.get(key)
    if not isinstance(msgs, list) or not msgs:
        raise _Bad(f"{key}: missing (a list of {{role, content}} messages)" if msgs is None
                   else f"{key}: a list of {{role, content}} messages is needed")
    turns = []
    for i, m in enumerate(msgs):
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant"):
            raise _Bad(f"{key}[{i}].role: must be system, user or assistant")
        turns.append((m["role"], str(_text(m, "content", f"{m['role']} message"))))
    roles = [r for r, _ in turns]
    if roles not in (["user", "assistant"], ["system", "user", "assistant"]):
        raise _Bad(f"{key}: one user message and then one assistant message are needed (an optional system "
                   f"message first); got {', '.join(roles)}")
    texts = [t for _, t in turns]
    return "\n\n".join(texts[:-1]), texts[-1]


def _flag(row: Row, key: str) -> bool | None:
    value = row.get(key)
    if value is None or isinstance(value, bool):
        return value
    raise _Bad(f"{key}: must be true or false (got {value!r})")


def _id(row: Row, key: str, n: int) -> str:
    value = row.get(key)
    if value is None:
        return f"row{n}"
    if isinstance(value, bool) or not isinstance(value, str | int) or not str(value).strip():
        raise _Bad(f"{key}: the row id must be a non-empty string or an integer")
    return str(value).strip()


def record(row: Any, cfg: CustomSource, source: str, n: int) -> tuple[SourceRecord, bool | None]:
    """One row as a record and its known-bad flag (raises _Bad naming the field)."""
    if not isinstance(row, dict):
        raise _Bad(f"<row>: a JSON object is needed (got {type(row).__name__})")
    rid = f"{source}:{_id(row, cfg.fields.id, n)}"
    common: dict[str, Any] = {"id": rid, "source": source, "domain": cfg.domain}
    if cfg.format == "mc":
        question, opts, idx, explanation = _mc(row, cfg)
        rec = SourceRecord(**common, kind="mc", question=question, choices=opts, answer=opts[idx],
                           answer_index=idx, explanation=explanation)
    else:
        if cfg.format == "messages":
            prompt, response = _messages(row, cfg)
        else:
            prompt = str(_text(row, cfg.fields.prompt, "prompt"))
            response = str(_text(row, cfg.fields.response, "response"))
        rec = SourceRecord(**common, kind="text", question=prompt, answer=response)
    return rec, _flag(row, cfg.fields.is_corrupted)


def parse(cfg: CustomSource, source: str, split: str = "train") -> list[Parsed]:
    """Every row of a custom source as a record; the first row that does not fit (or a repeated id)
    is a RecordError naming the file, the row and the field."""
    out: list[Parsed] = []
    seen: dict[str, str] = {}
    for n, (where, row) in enumerate(raw_rows(cfg, split), 1):
        try:
            rec, flag = record(row, cfg, source, n)
        except _Bad as e:
            raise RecordError(f"{where}: {e}") from None
        if rec.id in seen:
            raise RecordError(f"{where}: {cfg.fields.id}: duplicate id {rec.id.split(':', 1)[1]!r} "
                              f"(first at {seen[rec.id]})")
        seen[rec.id] = where
        out.append(Parsed(rec, flag, where))
    if not out:
        raise RecordError(f"{cfg.path or cfg.hub}: the custom source has no rows")
    return out


def load(spec: SourceSpec) -> list[SourceRecord]:
    """The records of a configured custom source (`ingest.sources[].custom`)."""
    assert spec.custom is not None
    return [p.record for p in parse(spec.custom, spec.name, spec.split)]
