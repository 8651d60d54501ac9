"""Generate: `sources.jsonl` -> `pairs.jsonl`, a true and a false reasoning chain per question."""

from __future__ import annotations

from pathlib import Path

from faco import artifacts
from faco.config import Study
from faco.generation.backends import get_backend
from faco.generation.pairs import build_pairs
from faco.progress import log
from faco.records import SourceRecord, read_jsonl, write_json, write_jsonl
from faco.stages import ingest

KIND = "pairs"


def run(study: Study, sources: Path, out: Path) -> Path:
    artifacts.require(sources, ingest.KIND)
    records = list(read_jsonl(sources / "sources.jsonl", SourceRecord))
    backend = get_backend(study.generate)
    log(f"generate: {len(records)} questions x 2 chains with backend {backend.name} ({backend.model})")
    meta: dict = {"backend": backend.name, "model": backend.model}
    with artifacts.artifact_dir(out, KIND, [sources], study.section_hash("generate"), meta) as tmp:
        pairs, rejects = build_pairs(records, backend, study.generate)
        write_jsonl(tmp / "pairs.jsonl", pairs)
        write_jsonl(tmp / "rejects.jsonl", rejects)
        meta.update(pairs=len(pairs), rejected=len(rejects))
        write_json(tmp / "stats.json", {"pairs": len(pairs), "rejected": len(rejects)})
    log(f"generate: {len(pairs)} pairs, {len(rejects)} rejected")
    return out
