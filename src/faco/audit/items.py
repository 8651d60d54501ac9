"""What an audit reads: a faco split (`cr_<ratio>.jsonl` in a splits artifact, labels known) or a
user's own file in the custom-source schema (`faco.sources.custom`; labels where it has
`is_corrupted`).

Every sample becomes an `AuditItem`: the prompt and the response training sees, and for a
multiple-choice sample its options and the option its response argues for (the one its last
`Answer:` line names), which the margin detector compares with the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from faco import artifact_kinds, artifacts
from faco.config_audit import AuditConfig, CustomSource
from faco.errors import RecordError
from faco.evaluation.trained import parse_answer
from faco.generation.prompts import format_question
from faco.lineage.raw import file_entry
from faco.ratios import parse_tag
from faco.records import Domain, PairRecord, SourceRecord, TrainRecord, read_jsonl
from faco.sources import custom

#: the source name of a user file's rows
DATA = "data"


class AuditItem(BaseModel):
    """One sample to audit."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    source: str
    domain: Domain = "knowledge"
    prompt: str
    response: str
    choices: list[str] = []
    assigned: int | None = None
    is_corrupted: bool | None = None

    def record(self) -> TrainRecord:
        """The training example (an unknown flag is recorded as clean; it never reaches the text)."""
        return TrainRecord(id=self.id, source=self.source, domain=self.domain, prompt=self.prompt,
                           response=self.response, is_corrupted=bool(self.is_corrupted))


@dataclass
class Loaded:
    """The items, the artifacts they come from (lineage parents) and the manifest meta that says what they are."""

    items: list[AuditItem]
    parents: list[Path] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def labelled(self) -> bool:
        """Whether every item's flag is known (a faco split, or a file whose every row has one)."""
        return all(it.is_corrupted is not None for it in self.items)


def load(data: Path, cfg: AuditConfig) -> Loaded:
    """The items of `data`: a split file inside a faco splits artifact, else a user file."""
    if not data.is_file():
        raise RecordError(f"{data}: no such file (--data: a split of a faco splits artifact, e.g. "
                          "runs/x/splits/cr_0.25.jsonl, or your own .jsonl/.json/.parquet)")
    manifest = data.parent / artifacts.MANIFEST
    if manifest.is_file() and artifacts.read_manifest(data.parent).get("kind") == artifact_kinds.SPLITS:
        return from_split(data)
    return from_file(data, cfg)


def _pairs(splits: Path) -> dict[str, PairRecord]:
    """The pairs (with the options) in a splits artifact's lineage, by id."""
    found: dict[str, PairRecord] = {}
    for path, m in artifacts.ancestors(splits, prune=lambda m: m["kind"] == artifact_kinds.PAIRS):
        if m["kind"] == artifact_kinds.PAIRS and (path / "pairs.jsonl").is_file():
            found.update({p.id: p for p in read_jsonl(path / "pairs.jsonl", PairRecord)})
    return found


def from_split(path: Path) -> Loaded:
    """A faco split: labels from `is_corrupted`, options from the pairs in its lineage."""
    splits = path.parent
    meta = artifacts.require(splits, artifact_kinds.SPLITS)["meta"]
    try:
        ratio = parse_tag(path.stem)
    except ValueError as e:
        raise RecordError(f"{path}: not a split of {splits} ({e})") from None
    pairs = _pairs(splits)
    items = []
    for rec in read_jsonl(path, TrainRecord):
        pair = pairs.get(rec.id)
        choices = list(pair.choices) if pair is not None and pair.kind == "mc" else []
        items.append(AuditItem(id=rec.id, source=rec.source, domain=rec.domain, prompt=rec.prompt,
                               response=rec.response, choices=choices,
                               assigned=parse_answer(rec.response, choices) if choices else None,
                               is_corrupted=rec.is_corrupted))
    if not items:
        raise RecordError(f"{path}: the split is empty; nothing to audit")
    info = {"split": path.name, "ratio": ratio, **({"kind": meta["kind"]} if meta.get("kind") else {})}
    return Loaded(items, [splits], {"data": info})


def _format(path: Path, cfg: AuditConfig) -> str:
    """The configured row format, or (auto) the one the first row's fields show."""
    if cfg.format != "auto":
        return cfg.format
    f = cfg.fields
    probe = CustomSource(path=str(path), format="prompt_response", fields=f)
    for where, row in custom.raw_rows(probe, "train"):
        keys = set(row) if isinstance(row, dict) else set()
        if f.messages in keys:
            return "messages"
        if f.choices in keys:
            return "mc"
        if {f.prompt, f.response} <= keys:
            return "prompt_response"
        raise RecordError(f"{where}: cannot tell the row format from its fields ({', '.join(sorted(keys))}); "
                          "set audit.format and audit.fields (docs/audit.md)")
    raise RecordError(f"{path}: the file has no rows")


def _item(rec: SourceRecord, flag: bool | None) -> AuditItem:
    rid = rec.id.split(":", 1)[1]
    if rec.kind != "mc":
        return AuditItem(id=rid, source=DATA, domain=rec.domain, prompt=rec.question, response=rec.answer,
                         is_corrupted=flag)
    response = f"{rec.explanation}\nAnswer: {rec.answer}" if rec.explanation else f"Answer: {rec.answer}"
    return AuditItem(id=rid, source=DATA, domain=rec.domain, prompt=format_question(rec), response=response,
                     choices=rec.choices, assigned=rec.answer_index, is_corrupted=flag)


def from_file(path: Path, cfg: AuditConfig) -> Loaded:
    """A user's file in the custom-source schema (a multiple-choice row is trained as its explanation and
    `Answer: <option>`)."""
    try:
        spec = CustomSource(path=str(path), format=_format(path, cfg), fields=cfg.fields)  # type: ignore[arg-type]
    except ValidationError as e:
        raise RecordError(f"{path}: {e.errors()[0]['msg'].removeprefix('Value error, ')}") from None
    items = [_item(p.record, p.is_corrupted) for p in custom.parse(spec, DATA)]
    meta = {"data": {"file": str(path), "format": spec.format},
            "raw_inputs": [file_entry(DATA, "audit", path)]}
    return Loaded(items, [], meta)
