"""Dry run: how many requests a generate run would send, and their tokens, cost and time."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from faco.config import GenerateConfig
from faco.generation.backends import ChainRequest, backend_params, params_key
from faco.generation.cache import ChainCache
from faco.generation.chains import chain_request, plan
from faco.records import SourceRecord

CHARS_PER_TOKEN = 4  # rough for English prose and code with BPE tokenizers


@dataclass(frozen=True)
class Estimate:
    """A dry run's answer. Regenerations of leaking false chains come on top (at most
    `max_false_retries` per question); cached replies are free and need no request."""

    questions: int
    requests: int
    cached: int
    to_send: int
    tokens_in: int
    tokens_out: int
    tokens_out_max: int
    cost_usd: float | None
    cost_usd_max: float | None
    time_s: float

    def summary(self) -> str:
        cost = (
            "unknown (no price for this model)"
            if self.cost_usd is None
            else f"${self.cost_usd:.2f} (at most ${self.cost_usd_max:.2f})"
        )
        return (
            f"{self.questions} questions -> {self.requests} requests "
            f"({self.cached} cached, {self.to_send} to send); "
            f"~{self.tokens_in} tokens in, ~{self.tokens_out} out (at most {self.tokens_out_max}); "
            f"cost {cost}; time ~{self.time_s / 60:.1f} min"
        )

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def estimate(
    records: list[SourceRecord], cfg: GenerateConfig, cache_path: Path | str | None = None
) -> Estimate:
    """Count the first-attempt requests (true and false chain per question) and price them."""
    items, _ = plan(records, cfg.seed, cfg.false_chain)
    requests: list[ChainRequest] = [
        chain_request(it, p, cfg.prompt_version, false_chain=cfg.false_chain)
        for it in items
        for p in ("true", "false")
    ]
    params = params_key(backend_params(cfg))
    keys = {r.key(cfg.backend, cfg.model, params): r for r in requests}
    cached: set[str] = set()
    path = cache_path or cfg.cache_path
    if cfg.backend != "template" and cfg.cache:
        with ChainCache(path) as cache:
            cached = set(cache.get_many(keys))
    send = [r for k, r in keys.items() if k not in cached]
    tokens_in = sum(len(r.prompt) // CHARS_PER_TOKEN + 1 for r in send)
    tokens_out = len(send) * min(cfg.est_output_tokens, cfg.max_tokens)
    tokens_out_max = len(send) * cfg.max_tokens
    price = cfg.prices.get(cfg.model)
    factor = cfg.batch_discount if cfg.mode == "batch" else 1.0

    def cost(tout: int) -> float | None:
        if cfg.backend != "openai":
            return 0.0
        if price is None:
            return None
        return round(factor * (tokens_in * price.input_per_mtok + tout * price.output_per_mtok) / 1e6, 4)

    waves = -(-len(send) // (cfg.concurrency if cfg.backend == "openai" else cfg.batch_size))
    return Estimate(
        questions=len(records),
        requests=len(requests),
        cached=len(requests) - len(send),
        to_send=len(send),
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        tokens_out_max=tokens_out_max,
        cost_usd=cost(tokens_out),
        cost_usd_max=cost(tokens_out_max),
        time_s=waves * cfg.est_latency_s,
    )
