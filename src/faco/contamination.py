"""Benchmark contamination: training questions that a configured benchmark also asks.

A training record is contaminated by a benchmark when its normalised question equals a text of
one of the benchmark's rows (questions of at least `MIN_EXACT_WORDS` words: a stem such as "The moon"
or "Which of the following is true?" is a different question with other options), or when they share
a 13-gram of normalised words (the GPT-3 paper's test). Both checks are hash-set look-ups, so a whole
source is checked in well under a second.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from faco.errors import FacoError
from faco.records import SourceRecord

NGRAM = 13
MIN_EXACT_WORDS = 8


class ContaminationError(FacoError):
    """Training data overlaps a benchmark the study evaluates on (exit 4)."""


def normalise(text: str) -> str:
    """Casefolded NFKC text with punctuation (and `_` blanks) as spaces, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(re.sub(r"[\W_]+", " ", text).split())


def ngrams(text: str, n: int = NGRAM) -> Iterator[tuple[str, ...]]:
    """The word n-grams of already normalised text (none when it has fewer than n words)."""
    words = text.split()
    for i in range(len(words) - n + 1):
        yield tuple(words[i : i + n])


@dataclass
class BenchmarkIndex:
    """One benchmark's normalised texts and their 13-grams."""

    name: str
    texts: set[str] = field(default_factory=set)
    grams: set[tuple[str, ...]] = field(default_factory=set)

    def add(self, text: str) -> None:
        norm = normalise(text)
        if norm:
            self.texts.add(norm)
            self.grams.update(ngrams(norm))

    def hits(self, question: str) -> tuple[bool, bool]:
        """(exact match, 13-gram overlap) of one question against this benchmark."""
        norm = normalise(question)
        exact = len(norm.split()) >= MIN_EXACT_WORDS and norm in self.texts
        return exact, any(g in self.grams for g in ngrams(norm))


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def _rows(path: Path) -> Iterator[Any]:
    with path.open(encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    continue


def benchmark_files(offline_task: str, data: Path, tasks_dir: Path) -> list[Path]:
    """The data files an offline twin reads (its `data_files`, `{data}` resolved; MMLU: every subject)."""
    if offline_task == "faco_mmlu":
        return sorted((data / "benchmarks" / "mmlu").glob("*/*.jsonl"))
    path = tasks_dir / f"{offline_task}.yaml"
    if not path.is_file():
        return []
    spec = yaml.safe_load(re.sub(r"!function\s+\S+", "null", path.read_text())) or {}
    files = (spec.get("dataset_kwargs") or {}).get("data_files") or {}
    values = files.values() if isinstance(files, dict) else [files]
    out: list[Path] = []
    for v in values:
        for f in v if isinstance(v, list) else [v]:
            p = Path(str(f).replace("{data}", str(data)))
            if p.is_file() and p.suffix == ".jsonl":
                out.append(p)
    return out


def index_benchmark(name: str, files: Iterable[Path]) -> BenchmarkIndex:
    """Every string field of every row of `files` (each field on its own; no n-gram spans two)."""
    idx = BenchmarkIndex(name)
    for path in files:
        for row in _rows(path):
            for text in _strings(row):
                idx.add(text)
    return idx


@dataclass(frozen=True)
class Overlap:
    """How many of one source's training records one benchmark also asks."""

    source: str
    benchmark: str
    records: int
    exact: int
    ngram: int

    def as_meta(self) -> dict[str, int]:
        return {"records": self.records, "exact": self.exact, "ngram13": self.ngram}


def overlaps(records: list[SourceRecord], benchmarks: list[BenchmarkIndex]) -> list[Overlap]:
    """Per (source, benchmark): contaminated records (exact or 13-gram), and each count apart."""
    out = []
    sources = sorted({r.source for r in records})
    for bench in benchmarks:
        for source in sources:
            exact = gram = hit = 0
            for r in records:
                if r.source != source:
                    continue
                e, g = bench.hits(r.question)
                exact += e
                gram += g
                hit += e or g
            if hit:
                out.append(Overlap(source, bench.name, hit, exact, gram))
    return out


def refusal(found: list[Overlap]) -> str:
    """The one-line refusal naming the largest overlap (and how many more pairs there are)."""
    worst = max(found, key=lambda o: o.records)
    more = len(found) - 1
    return (
        f"contamination: source {worst.source!r} shares {worst.records} training questions with benchmark "
        f"{worst.benchmark!r} ({worst.exact} exact, {worst.ngram} by 13-gram)"
        + (f" (+{more} more source/benchmark pairs)" if more else "")
        + "; use another split or set ingest.allow_contamination: true"
    )
