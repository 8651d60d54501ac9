"""Data records (JSON Lines, one pydantic model per kind) and their reading and writing."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from faco.errors import RecordError

SCHEMA_VERSION = 1

Domain = Literal["knowledge", "commonsense", "reasoning", "programming", "nli"]


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SourceRecord(Record):
    """One question from a source dataset, normalised."""

    schema_version: int = SCHEMA_VERSION
    id: str = Field(min_length=1)
    source: str
    domain: Domain
    kind: Literal["mc", "code", "text"] = Field(description="text: a free-form prompt and response (custom sources)")
    question: str = Field(min_length=1)
    choices: list[str] = Field(default_factory=list, description="option texts; empty for code and text")
    answer: str = Field(min_length=1, description="the correct option's text, the reference code or the response")
    answer_index: int | None = None
    explanation: str | None = Field(default=None, description="gold explanation where the source has one")


class Response(Record):
    """A reasoning chain and the answer it argues for."""

    reasoning: str
    answer: str
    answer_index: int | None = None


class PairRecord(SourceRecord):
    """A source record with a true and a false response."""

    true: Response
    false: Response
    generator: dict[str, str] = Field(default_factory=dict, description="backend, model, prompt version")


class TrainRecord(Record):
    """One training example; `is_corrupted` never appears in the text the model sees."""

    schema_version: int = SCHEMA_VERSION
    id: str
    source: str
    domain: Domain
    prompt: str
    response: str
    is_corrupted: bool


class RejectRecord(Record):
    """A row a stage could not use, with where it came from and why."""

    source: str
    row: str
    reason: str


R = TypeVar("R", bound=BaseModel)


def read_jsonl(path: Path, model: type[R]) -> Iterator[R]:
    """Yield validated records; a bad row raises RecordError naming file, line and field."""
    with path.open("rb") as fh:
        for lineno, data in enumerate(fh, 1):
            try:
                line = data.decode("utf-8")
            except UnicodeDecodeError as e:
                raise RecordError(f"{path}:{lineno}: not UTF-8 text (byte {e.start} of the line)") from None
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as e:
                raise RecordError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
            try:
                yield model.model_validate(raw)
            except ValidationError as e:
                raise RecordError(f"{path}:{lineno}: {problem(e)}") from None


def problem(err: ValidationError) -> str:
    """The first validation error as `field: what is wrong` (a missing field is called missing)."""
    first = err.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or "<row>"
    msg = {"missing": "missing", "extra_forbidden": "unknown field"}.get(first["type"], first["msg"])
    return f"{field}: {msg}"


def write_jsonl(path: Path, records: Iterable[BaseModel]) -> int:
    """Write records as JSON Lines; returns the count."""
    n = 0
    with path.open("w", encoding="utf-8") as fh:
        for rec in records:
            fh.write(rec.model_dump_json() + "\n")
            n += 1
    return n


def write_json(path: Path, obj: object) -> None:
    path.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n", encoding="utf-8")
