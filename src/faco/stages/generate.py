"""Generate: `sources.jsonl` -> `pairs.jsonl`, a true and a false reasoning chain per question.

Writes `pairs.jsonl`, `rejects.jsonl`, `stats.json` and `ledger.json` (requests, cache hits, tokens
and cost); with `false_chain: synthetic` the manifest's meta names who chose the labels (`labeller`:
`model <name>` or `rule: word-overlap`, and `label_method`).
`dry_run` answers what a run would cost before paying for it (`faco generate --dry-run`).
`generate.max_cost_usd` caps the spend: a run whose estimate exceeds it does not start, and a run
whose ledger passes it stops before sending more (every finished reply stays in the cache).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from faco import artifact_kinds, artifacts
from faco.config import GenerateConfig, Study
from faco.errors import FacoError
from faco.generation.backends import ChainRequest, Outcome, ReasoningBackend, Sink
from faco.generation.cache import ChainCache, synced
from faco.generation.estimate import Estimate, estimate
from faco.generation.false_chains import labeller
from faco.generation.pairs import build_pairs
from faco.generation.runner import Generator, Ledger
from faco.generation.select import get_backend
from faco.progress import log
from faco.records import SourceRecord, read_jsonl, write_json, write_jsonl


class SpendCapError(FacoError):
    """The estimate or the ledger of a generation run exceeds `generate.max_cost_usd`."""


class _Capped:
    """A backend that sends requests in waves of `concurrency` and stops before a wave once the
    ledger's cost exceeds the cap, so nothing is in flight when it stops."""

    def __init__(self, backend: ReasoningBackend, ledger: Ledger, cfg: GenerateConfig, cap: float) -> None:
        self.backend, self.ledger, self.cfg, self.cap = backend, ledger, cfg, cap

    def __getattr__(self, name: str) -> Any:
        return getattr(self.backend, name)

    def complete(self, requests: Sequence[ChainRequest], sink: Sink) -> None:
        wave = self.cfg.concurrency if self.cfg.mode == "online" else max(1, len(requests))
        for start in range(0, len(requests), wave):
            spent = self.ledger.to_dict(self.cfg)["cost_usd"] or 0.0
            if spent > self.cap:
                raise SpendCapError(
                    f"generate: stopped at the spend cap: spent ${spent:.4f} > generate.max_cost_usd "
                    f"${self.cap:g}; the {self.ledger.paid} paid replies are cached, a rerun pays only for the rest")
            self.backend.complete(requests[start:start + wave], _shifted(sink, start))


def _shifted(sink: Sink, offset: int) -> Sink:
    def shifted(i: int, outcome: Outcome) -> None:
        sink(offset + i, outcome)

    return shifted


def check_estimate(records: list[SourceRecord], cfg: GenerateConfig, cache_path: str | None = None) -> None:
    """Refuse a run whose dry-run estimate (cached replies free) exceeds `generate.max_cost_usd`."""
    if cfg.max_cost_usd is None:
        return
    est = estimate(records, cfg, cache_path)
    if est.cost_usd is None:
        raise SpendCapError(f"generate.max_cost_usd: no price for model {cfg.model!r} in generate.prices, "
                            "so the cap cannot be checked")
    if est.cost_usd > cfg.max_cost_usd:
        raise SpendCapError(
            f"generate: estimated cost ${est.cost_usd:.4f} ({est.to_send} requests to send, {est.cached} cached) "
            f"exceeds generate.max_cost_usd ${cfg.max_cost_usd:g}; nothing was sent")


def _records(sources: Path) -> list[SourceRecord]:
    artifacts.require(sources, artifact_kinds.SOURCES)
    return list(read_jsonl(sources / "sources.jsonl", SourceRecord))


def run(study: Study, sources: Path, out: Path) -> Path:
    cfg = study.generate
    records = _records(sources)
    backend = get_backend(cfg)
    with synced(cfg.cache_path if cfg.cache and backend.cacheable else None) as cache_path:
        check_estimate(records, cfg, cache_path)
        return _generate(study, records, backend, sources, out, cache_path)


def _generate(study: Study, records: list[SourceRecord], backend: ReasoningBackend, sources: Path, out: Path,
              cache_path: str | None) -> Path:
    cfg = study.generate
    log(
        f"generate: {len(records)} questions x 2 chains, backend {backend.name} ({backend.model}, {cfg.mode})"
    )
    meta: dict = {"backend": backend.name, "model": backend.model, **labeller(backend, cfg)}
    if "labeller" in meta:
        log(f"generate: synthetic labels by {meta['labeller']} ({meta['label_method']})")
    cache = ChainCache(cache_path) if cfg.cache and backend.cacheable else None
    ledger = Ledger()
    if cfg.max_cost_usd is not None:
        backend = _Capped(backend, ledger, cfg, cfg.max_cost_usd)  # type: ignore[assignment]
    try:
        with artifacts.artifact_dir(out, artifact_kinds.PAIRS, [sources], study.section_hash("generate"), meta) as tmp:
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
    cfg = study.generate
    with synced(cfg.cache_path if cfg.cache else None, upload=False) as cache_path:
        return estimate(_records(sources), cfg, cache_path)
