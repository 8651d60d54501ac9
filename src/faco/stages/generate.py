"""Generate: `sources.jsonl` -> `pairs.jsonl`, a true and a false reasoning chain per question.

Writes `pairs.jsonl`, `rejects.jsonl`, `stats.json` and `ledger.json` (requests, cache hits, tokens
and cost). `dry_run` answers what a run would cost before paying for it (`faco generate --dry-run`).
"""

from __future__ import annotations

from pathlib import Path

from faco import artifacts
from faco.config import Study
from faco.generation.backends import get_backend
from faco.generation.cache import ChainCache
from faco.generation.estimate import Estimate, estimate
from faco.generation.pairs import build_pairs
from faco.generation.runner import Generator, Ledger
from faco.progress import log
from faco.records import SourceRecord, read_jsonl, write_json, write_jsonl
from faco.stages import ingest

KIND = "pairs"


def _records(sources: Path) -> list[SourceRecord]:
    artifacts.require(sources, ingest.KIND)
    return list(read_jsonl(sources / "sources.jsonl", SourceRecord))


def run(study: Study, sources: Path, out: Path) -> Path:
    cfg = study.generate
    records = _records(sources)
    backend = get_backend(cfg)
    log(
        f"generate: {len(records)} questions x 2 chains, backend {backend.name} ({backend.model}, {cfg.mode})"
    )
    meta: dict = {"backend": backend.name, "model": backend.model}
    cache = ChainCache(cfg.cache_path) if cfg.cache and backend.cacheable else None
    ledger = Ledger()
    try:
        with artifacts.artifact_dir(out, KIND, [sources], study.section_hash("generate"), meta) as tmp:
            pairs, rejects = build_pairs(records, Generator(backend, cache, ledger), cfg)
            write_jsonl(tmp / "pairs.jsonl", pairs)
            write_jsonl(tmp / "rejects.jsonl", rejects)
            spend = ledger.to_dict(cfg)
            write_json(tmp / "ledger.json", spend)
            meta.update(pairs=len(pairs), rejected=len(rejects), cost_usd=spend["cost_usd"])
            write_json(tmp / "stats.json", {"pairs": len(pairs), "rejected": len(rejects)})
    finally:
        if cache is not None:
            cache.close()
    log(
        f"generate: {len(pairs)} pairs, {len(rejects)} rejected; {ledger.paid} paid requests, "
        f"{ledger.cache_hits} from cache, cost ${spend['cost_usd']}"
    )
    return out


def dry_run(study: Study, sources: Path) -> Estimate:
    """What `run` would send and pay, without sending anything (cached replies count as free)."""
    return estimate(_records(sources), study.generate)
