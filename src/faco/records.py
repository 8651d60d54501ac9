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
    kind: Literal["mc", "code"]
    question: str = Field(min_length=1)
    choices: list[str] = Field(default_factory=list, description="option texts; empty for code")
    answer: str = Field(min_length=1, description="the correct option's text, or the reference code")
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
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as e:
                raise RecordError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
            try:
                yield model.model_validate(raw)
            except ValidationError as e:
                err = e.errors()[0]
                field = ".".join(str(p) for p in err["loc"]) or "<row>"
                raise RecordError(f"{path}:{lineno}: {field}: {err['msg']}") from None


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
