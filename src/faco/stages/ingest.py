"""Ingest: source datasets -> `sources.jsonl` (normalised records), with rejects and per-source stats."""

from __future__ import annotations

import random
import re
from collections import Counter
from pathlib import Path

from faco.artifacts import artifact_dir
from faco.config import SourceSpec, Study
from faco.paths import data_dir
from faco.progress import log, track
from faco.records import RejectRecord, SourceRecord, write_json, write_jsonl
from faco.sources.mirror import hub_rows, mirror_rows
from faco.sources.registry import SOURCES, RowRejected

KIND = "sources"


def load_source(study: Study, spec: SourceSpec) -> tuple[list[SourceRecord], list[RejectRecord]]:
    """Normalise every row of one source split; bad rows become rejects, never silent drops."""
    name, split = spec.name, spec.split
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
    for index, row in enumerate(rows):
        where = f"{split}[{index}]"
        if "__invalid__" in row:
            rejects.append(RejectRecord(source=name, row=where, reason=row["__invalid__"]))
            continue
        try:
            rec = adapter.normalise(row, index)
        except RowRejected as e:
            rejects.append(RejectRecord(source=name, row=where, reason=str(e)))
            continue
        if rec.id in seen:
            rejects.append(RejectRecord(source=name, row=where, reason=f"id: duplicate {rec.id!r}"))
            continue
        seen.add(rec.id)
        records.append(rec)
    return records, rejects


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


def run(study: Study, out: Path) -> Path:
    """Run the ingest stage into artifact directory `out`."""
    cfg = study.ingest
    meta: dict = {"origin": cfg.origin, "sources": {}}
    with artifact_dir(out, KIND, [], study.section_hash("ingest"), meta) as tmp:
        all_records: list[SourceRecord] = []
        all_rejects: list[RejectRecord] = []
        for spec in track(cfg.sources, "ingest", total=len(cfg.sources)):
            records, rejects = load_source(study, spec)
            cap = spec.limit or cfg.per_source_cap
            kept = sample(records, cap, cfg.seed, spec.name)
            all_records.extend(kept)
            all_rejects.extend(rejects)
            meta["sources"][spec.name] = {
                "split": spec.split,
                "rows": len(records) + len(rejects),
                "valid": len(records),
                "rejected": len(rejects),
                "kept": len(kept),
                "reject_reasons": reason_counts(rejects),
            }
        write_jsonl(tmp / "sources.jsonl", all_records)
        write_jsonl(tmp / "rejects.jsonl", all_rejects)
        write_json(tmp / "stats.json", meta["sources"])
        meta["records"] = len(all_records)
        meta["rejected"] = len(all_rejects)
    for name, s in meta["sources"].items():
        why = "; ".join(f"{n} x {reason}" for reason, n in s["reject_reasons"].items())
        log(
            f"ingest {name}/{s['split']}: {s['kept']} kept of {s['valid']} valid, {s['rejected']} rejected"
            + (f" ({why})" if why else "")
        )
    return out
