"""The cached generator: cache look-up, backend call for the misses, and the cost ledger."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from faco.config import GenerateConfig
from faco.errors import FacoError
from faco.generation.backends import ChainRequest, Completion, Failure, Outcome, ReasoningBackend, params_key
from faco.generation.cache import ChainCache


class GenerationError(FacoError):
    """Requests still failing after every retry; finished replies are cached, so a rerun resumes."""


@dataclass
class Ledger:
    """What a run asked for, what it paid for, and what that cost."""

    requests: int = 0
    cache_hits: int = 0
    paid: int = 0
    failed: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cached_tokens_in: int = 0
    cached_tokens_out: int = 0
    backend_stats: Counter[str] = field(default_factory=Counter)

    def add(self, c: Completion, cached: bool) -> None:
        if cached:
            self.cache_hits += 1
            self.cached_tokens_in += c.tokens_in
            self.cached_tokens_out += c.tokens_out
        else:
            self.paid += 1
            self.tokens_in += c.tokens_in
            self.tokens_out += c.tokens_out

    def to_dict(self, cfg: GenerateConfig) -> dict[str, Any]:
        price = cfg.prices.get(cfg.model) if cfg.backend == "openai" else None
        factor = cfg.batch_discount if cfg.mode == "batch" else 1.0

        def cost(tin: int, tout: int) -> float | None:
            if cfg.backend != "openai":
                return 0.0
            if price is None:
                return None
            return round(factor * (tin * price.input_per_mtok + tout * price.output_per_mtok) / 1e6, 6)

        return {
            "backend": cfg.backend,
            "model": cfg.model,
            "mode": cfg.mode,
            "requests": self.requests,
            "cache_hits": self.cache_hits,
            "paid": self.paid,
            "failed": self.failed,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "cached_tokens_in": self.cached_tokens_in,
            "cached_tokens_out": self.cached_tokens_out,
            "price_per_mtok": price.model_dump() if price else None,
            "price_factor": factor,
            "cost_usd": cost(self.tokens_in, self.tokens_out),
            "cost_usd_incl_cached": cost(
                self.tokens_in + self.cached_tokens_in, self.tokens_out + self.cached_tokens_out
            ),
            "backend_stats": dict(self.backend_stats),
        }


class Generator:
    """Generates chains through the cache: each reply is paid for once, stored as soon as it arrives."""

    def __init__(
        self, backend: ReasoningBackend, cache: ChainCache | None, ledger: Ledger | None = None
    ) -> None:
        self.backend = backend
        self.cache = cache if backend.cacheable else None
        self.ledger = ledger or Ledger()
        self._params = params_key(backend.params())

    def key(self, req: ChainRequest) -> str:
        return req.key(self.backend.name, self.backend.model, self._params)

    def generate(self, requests: list[ChainRequest]) -> list[Outcome]:
        """One outcome per request, in order; raises GenerationError if any stays retryable-failed."""
        keys = [self.key(r) for r in requests]
        hits = self.cache.get_many(keys) if self.cache else {}
        for k in keys:
            if k in hits:
                self.ledger.add(hits[k], cached=True)
        results: dict[str, Outcome] = dict(hits)
        todo = list({k: r for k, r in zip(keys, requests, strict=True) if k not in results}.items())
        self.ledger.requests += len(requests)

        def sink(i: int, outcome: Outcome) -> None:
            key = todo[i][0]
            if isinstance(outcome, Completion):
                if self.cache is not None:
                    self.cache.put(key, self.backend.name, self.backend.model, outcome)
                self.ledger.add(outcome, cached=False)
            else:
                self.ledger.failed += 1
            results[key] = outcome

        if todo:
            self.backend.complete([r for _, r in todo], sink)
            self.ledger.backend_stats.update(getattr(self.backend, "stats", {}))
            getattr(self.backend, "stats", Counter()).clear()
        missing = [k for k, _ in todo if k not in results]
        stuck = [o for o in results.values() if isinstance(o, Failure) and o.retryable]
        if missing or stuck:
            example = stuck[0].reason if stuck else "no reply from the backend"
            raise GenerationError(
                f"generate: {len(stuck) + len(missing)} of {len(todo)} requests failed after all retries "
                f"(e.g. {example}); finished replies are cached, rerun to resume"
            )
        return [results[k] for k in keys]
