"""Ingest: source datasets -> `sources.jsonl` (normalised records) and a disjoint `heldout.jsonl`,
with rejects, per-source stats and a contamination check against the study's benchmarks."""

from __future__ import annotations

import random
import re
from collections import Counter
from pathlib import Path

from pydantic import ValidationError

from faco import artifact_kinds
from faco.artifacts import artifact_dir
from faco.config import SourceSpec, Study
from faco.contamination import (
    BenchmarkIndex,
    ContaminationError,
    benchmark_files,
    index_benchmark,
    normalise,
    overlaps,
    refusal,
)
from faco.errors import RecordError
from faco.evaluation.suite import suite
from faco.lineage.raw import ingest_inputs
from faco.paths import TASKS_DIR, data_dir
from faco.progress import log, track
from faco.records import RejectRecord, SourceRecord, problem, write_json, write_jsonl
from faco.sources import custom
from faco.sources.mirror import BadRow, hub_rows, mirror_rows
from faco.sources.registry import SOURCES, RowRejected


def load_source(study: Study, spec: SourceSpec, taken: dict[str, str] | None = None
                ) -> tuple[list[SourceRecord], list[RejectRecord]]:
    """Normalise every row of one source split; a bad row becomes a reject naming where it came from
    (`file:line`, `split[i]`) and its field, never a silent drop. `taken`: ids earlier source splits
    gave (-> the split), rejected here as duplicates too, and added to. A custom source's bad row is an
    error naming its file, row and field (`faco.sources.custom`)."""
    name, split = spec.name, spec.split
    if spec.custom is not None:
        return _custom(spec, taken)
    adapter = SOURCES[name]
    cfg = study.ingest
    rows = (
        hub_rows(name, split, spec.revision, spec.data_files)
        if cfg.origin == "hub"
        else mirror_rows(name, split, data_dir(cfg.data_dir))
    )
    records: list[SourceRecord] = []
    rejects: list[RejectRecord] = []
    seen: set[str] = set()
    for index, (where, row) in enumerate(rows):
        if isinstance(row, BadRow):
            rejects.append(RejectRecord(source=name, row=where, reason=row.reason))
            continue
        try:
            rec = adapter.normalise(row, index)
        except RowRejected as e:
            rejects.append(RejectRecord(source=name, row=where, reason=str(e)))
            continue
        except ValidationError as e:  # a value the record schema refuses
            rejects.append(RejectRecord(source=name, row=where, reason=problem(e)))
            continue
        if rec.id in seen:
            rejects.append(RejectRecord(source=name, row=where, reason=f"id: duplicate {rec.id!r}"))
            continue
        if taken is not None and rec.id in taken:
            rejects.append(RejectRecord(source=name, row=where,
                                        reason=f"id: duplicate {rec.id!r} (also in {taken[rec.id]})"))
            continue
        seen.add(rec.id)
        records.append(rec)
    if taken is not None:
        taken.update((rec.id, f"{name}/{split}") for rec in records)
    return records, rejects


def _custom(spec: SourceSpec, taken: dict[str, str] | None) -> tuple[list[SourceRecord], list[RejectRecord]]:
    """A custom source's records (its own ids are unique, `faco.sources.custom`); an id an earlier
    source split gave is rejected as a duplicate."""
    records: list[SourceRecord] = []
    rejects: list[RejectRecord] = []
    for rec in custom.load(spec):
        if taken is not None and rec.id in taken:
            rejects.append(RejectRecord(source=spec.name, row=rec.id,
                                        reason=f"id: duplicate {rec.id!r} (also in {taken[rec.id]})"))
        else:
            records.append(rec)
    if taken is not None:
        taken.update((rec.id, f"{spec.name}/{spec.split}") for rec in records)
    return records, rejects


def require_records(spec: SourceSpec, records: list[SourceRecord], rejects: list[RejectRecord]) -> None:
    """Refuse a source split with no usable record (it would pass generate and corrupt, then fail in train)."""
    if not records:
        why = "; ".join(f"{n} x {reason}" for reason, n in reason_counts(rejects).items())
        raise RecordError(
            f"ingest.sources: {spec.name!r} split {spec.split!r} has no usable records"
            + (f" ({len(rejects)} rows, all rejected: {why})" if rejects else " (0 rows)")
        )


def reason_counts(rejects: list[RejectRecord]) -> dict[str, int]:
    """Rejects per reason (the reason up to its first quoted value, so duplicate ids group together)."""
    return dict(
        Counter(
            re.sub(r"^\S+:\d+: ", "", r.reason).split(" '")[0].split(" (")[0] for r in rejects
        ).most_common()
    )


def sample(records: list[SourceRecord], cap: int, seed: int, source: str) -> list[SourceRecord]:
    """A seeded sample of at most `cap` records, in source order (same result on every machine)."""
    if len(records) <= cap:
        return records
    keep = sorted(random.Random(f"{seed}:{source}").sample(range(len(records)), cap))
    return [records[i] for i in keep]


def heldout_count(share: float, cap: int, valid: int) -> int:
    """Records to hold out of a source with `valid` records: a count, or `share` of what the study
    takes from it (training up to `cap` plus the held-out records themselves)."""
    if share >= 1:
        return min(int(share), valid)
    taken = min(valid, round(cap / (1 - share)))
    return round(share * taken)


def split_heldout(
    records: list[SourceRecord], n: int, seed: int, source: str
) -> tuple[list[SourceRecord], list[SourceRecord]]:
    """A seeded held-out set of about `n` records (whole groups of one normalised question, so no
    question is on both sides) and the rest, both in source order."""
    groups: dict[str, list[int]] = {}
    for i, rec in enumerate(records):
        groups.setdefault(normalise(rec.question), []).append(i)
    order = list(groups.values())
    random.Random(f"{seed}:heldout:{source}").shuffle(order)
    held: set[int] = set()
    for members in order:
        if len(held) >= n:
            break
        held.update(members)
    return [r for i, r in enumerate(records) if i in held], [r for i, r in enumerate(records) if i not in held]


def benchmark_indexes(study: Study) -> list[BenchmarkIndex]:
    """The configured benchmarks whose offline data is in the mirror, indexed for contamination checks."""
    data = data_dir(study.ingest.data_dir)
    out = []
    for spec in study.evaluate.benchmarks:
        twin = suite()[spec.name].offline
        files = benchmark_files(twin, data, TASKS_DIR / "offline") if twin else []
        if files:
            out.append(index_benchmark(spec.name, files))
    return out


def run(study: Study, out: Path) -> Path:
    """Run the ingest stage into artifact directory `out`.

    Writes `sources.jsonl` (the training pool), `heldout.jsonl` (same schema, never trained on) and
    refuses, before writing anything, training questions that a configured benchmark asks.
    """
    cfg = study.ingest
    meta: dict = {"origin": cfg.origin, "sources": {}}
    loaded = []
    taken: dict[str, str] = {}  # record id -> the source split it came from
    for spec in track(cfg.sources, "ingest", total=len(cfg.sources)):
        records, rejects = load_source(study, spec, taken)
        require_records(spec, records, rejects)
        cap = spec.limit or cfg.per_source_cap
        held, rest = split_heldout(records, heldout_count(cfg.heldout, cap, len(records)), cfg.seed, spec.name)
        loaded.append((spec, cap, records, rejects, held, rest))
    held_questions = {normalise(r.question) for *_, held, _ in loaded for r in held}
    all_records: list[SourceRecord] = []
    all_heldout: list[SourceRecord] = []
    all_rejects: list[RejectRecord] = []
    for spec, cap, records, rejects, held, rest in loaded:
        pool = [r for r in rest if normalise(r.question) not in held_questions]
        kept = sample(pool, cap, cfg.seed, spec.name)
        all_records.extend(kept)
        all_heldout.extend(held)
        all_rejects.extend(rejects)
        several = sum(other.name == spec.name for other in cfg.sources) > 1  # a source with two splits
        meta["sources"][f"{spec.name}/{spec.split}" if several else spec.name] = {
            "split": spec.split,
            "rows": len(records) + len(rejects),
            "valid": len(records),
            "rejected": len(rejects),
            "kept": len(kept),
            "heldout": len(held),
            "reject_reasons": reason_counts(rejects),
        }
    if not all_records:  # an empty training pool would pass generate and corrupt, then fail in train
        raise RecordError(f"ingest.heldout: {cfg.heldout:g} holds out every usable record; none is left to train on")
    found = overlaps(all_records, benchmark_indexes(study))
    if found and not cfg.allow_contamination:
        raise ContaminationError(refusal(found))
    meta["contamination"] = {f"{o.source}/{o.benchmark}": o.as_meta() for o in found}
    meta["raw_inputs"] = ingest_inputs(study)  # lineage below this artifact: the bytes it was read from
    with artifact_dir(out, artifact_kinds.SOURCES, [], study.section_hash("ingest"), meta) as tmp:
        write_jsonl(tmp / "sources.jsonl", all_records)
        write_jsonl(tmp / "heldout.jsonl", all_heldout)
        write_jsonl(tmp / "rejects.jsonl", all_rejects)
        write_json(tmp / "stats.json", meta["sources"])
        meta["records"] = len(all_records)
        meta["heldout"] = len(all_heldout)
        meta["rejected"] = len(all_rejects)
    for name, s in meta["sources"].items():
        why = "; ".join(f"{n} x {reason}" for reason, n in s["reject_reasons"].items())
        log(
            f"ingest {name.split('/')[0]}/{s['split']}: {s['kept']} kept and {s['heldout']} held out of "
            f"{s['valid']} valid, {s['rejected']} rejected" + (f" ({why})" if why else "")
        )
    for key, o in meta["contamination"].items():
        log(f"ingest: contamination allowed: {key}: {o['records']} training questions also in the benchmark")
    return out
