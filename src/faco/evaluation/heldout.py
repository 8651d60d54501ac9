"""Benchmark `heldout`: the ingest artifact's held-out questions, asked exactly as training asks them.

Each multiple-choice record of `heldout.jsonl` is asked in the trained format (`faco.evaluation.trained`:
the training prompt, `acc_gen` from the greedy reply's `Answer:` line, `acc_ll` from the answer lines'
likelihood, `unparsed`), one lm-eval task per source, grouped as `faco_heldout` and pooled weighted by
size. The ingest artifact comes from the model's lineage or is given.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from faco import artifact_kinds, artifacts
from faco.errors import ConfigError
from faco.evaluation import trained
from faco.records import SourceRecord, read_jsonl

BENCHMARK = "heldout"
GROUP = "faco_heldout"
FILE = "heldout.jsonl"


def _parents(path: Path) -> list[Path]:
    """An artifact's parents: the recorded relative path where it holds the recorded manifest, else the path."""
    found = []
    for p in artifacts.read_manifest(path).get("parents", []):
        options = [path / p["relative_path"]] if p.get("relative_path") else []
        options.append(Path(p["path"]))
        intact = [o for o in options if (o / artifacts.MANIFEST).is_file()
                  and artifacts.manifest_hash(o) == p.get("manifest_sha256")]
        existing = [o for o in options if (o / artifacts.MANIFEST).is_file()]
        if intact or existing:
            found.append((intact or existing)[0])
    return found


def find_ingest(model_dir: Path) -> Path | None:
    """The ingest artifact in a model's lineage (model -> splits -> pairs -> ingest), or None."""
    todo, seen = [model_dir], set()
    while todo:
        path = todo.pop(0)
        if path.resolve() in seen:
            continue
        seen.add(path.resolve())
        if artifacts.read_manifest(path).get("kind") == artifact_kinds.SOURCES:
            return path
        todo.extend(_parents(path))
    return None


def ingest_for(model_dir: Path, explicit: Path | None) -> Path:
    """The ingest artifact whose held-out share to ask: `explicit`, or the one in the model's lineage."""
    ingest = explicit if explicit is not None else find_ingest(model_dir)
    if ingest is None:
        raise ConfigError(
            f"{model_dir}: benchmark 'heldout' needs the ingest artifact and none is in the model's lineage; "
            "pass it with --heldout INGEST_DIR"
        )
    artifacts.require(ingest, artifact_kinds.SOURCES)
    if not (ingest / FILE).is_file():
        raise ConfigError(f"{ingest}: no {FILE} (ingest with ingest.heldout set to hold out a share of every source)")
    return ingest


def questions(ingest: Path) -> dict[str, list[SourceRecord]]:
    """The held-out multiple-choice records by source, in file order (code records are not asked)."""
    by_source: dict[str, list[SourceRecord]] = defaultdict(list)
    for rec in read_jsonl(ingest / FILE, SourceRecord):
        if rec.kind == "mc" and rec.answer_index is not None:
            by_source[rec.source].append(rec)
    if not by_source:
        raise ConfigError(f"{ingest / FILE}: no multiple-choice records with an answer_index to ask")
    return dict(sorted(by_source.items()))


def render(ingest: Path, tok: Any, out: Path, max_gen_toks: int | None, likelihood: bool = True
           ) -> dict[str, list[float]]:
    """Write the `faco_heldout` group, one task and data file per source, into the include path `out`.

    Returns each source's per-document chance level (1 / number of options), in document order.
    """
    return trained.render(out, GROUP, questions(ingest), tok, max_gen_toks, group=True, likelihood=likelihood)
