"""The LLM judge of the audit: "is this response correct?" asked through the generation backends.

A local model (the transformers backend) scores the two answer lines, `Answer: (A) yes` and
`Answer: (B) no`, after the prompt: its probability of "no" (of the two) is the score, with no
sampling. An API judge replies; its reply goes through the generation cache and ledger (asked
once, a rerun pays nothing) and is parsed like a synthetic chain's answer line: 1 for no, 0 for
yes, ½ for a reply that commits to neither or a request that failed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from faco.audit.items import AuditItem
from faco.config import GenerateConfig
from faco.config_audit import AuditJudgeConfig
from faco.generation.backends import ChainRequest, Completion, OptionScorer
from faco.generation.cache import ChainCache
from faco.generation.chains import parse_choice
from faco.generation.runner import Generator, Ledger
from faco.generation.select import get_backend
from faco.paths import PROMPTS_DIR, cache_dir

VERDICTS = ("yes", "no")


def generate_config(cfg: AuditJudgeConfig) -> GenerateConfig:
    """The judge as a generation backend: greedy, short replies."""
    return GenerateConfig(backend=cfg.backend, model=cfg.model, temperature=0.0, max_tokens=cfg.max_tokens,
                          base_url=cfg.base_url, api_key_env=cfg.api_key_env, concurrency=cfg.concurrency,
                          timeout_s=cfg.timeout_s, max_retries=cfg.max_retries, cache=cfg.cache,
                          cache_path=cfg.cache_path)


def render(version: str, item: AuditItem) -> str:
    """The judge prompt of one sample (plain substitution: texts may hold braces)."""
    text = (PROMPTS_DIR / f"{version}.txt").read_text(encoding="utf-8")
    return text.replace("{prompt}", item.prompt).replace("{response}", item.response)


def p_no(yes: float, no: float) -> float:
    """P(no) of the two answer lines' log-likelihoods: 1 / (1 + e^(yes − no))."""
    return 1.0 / (1.0 + math.exp(max(-700.0, min(700.0, yes - no))))


def verdict(reply: str) -> float:
    """1 for no, 0 for yes, ½ when the reply commits to neither."""
    parsed = parse_choice(reply, list(VERDICTS))
    return 0.5 if parsed is None else float(parsed[0])


def judge(items: Sequence[AuditItem], cfg: AuditJudgeConfig) -> tuple[dict[str, float], dict[str, Any]]:
    """id -> the judge's score, and the ledger of what it asked."""
    gcfg = generate_config(cfg)
    backend = get_backend(gcfg)
    requests = [ChainRequest(record_id=it.id, polarity="audit-judge", prompt=render(cfg.prompt_version, it),
                             question=it.prompt, answer=it.response, explanation=None, choices=VERDICTS)
                for it in items]
    ledger = Ledger()
    if isinstance(backend, OptionScorer):
        scores = backend.option_scores(requests)
        ledger.requests = len(requests)
        return {it.id: p_no(*s) for it, s in zip(items, scores, strict=True)}, ledger.to_dict(gcfg)
    cache = ChainCache(cfg.cache_path or cache_dir() / "audit-judge.sqlite") if cfg.cache else None
    try:
        outcomes = Generator(backend, cache, ledger).generate(requests)
    finally:
        if cache is not None:
            cache.close()
    scores_by_id = {it.id: verdict(o.text) if isinstance(o, Completion) else 0.5
                    for it, o in zip(items, outcomes, strict=True)}
    return scores_by_id, ledger.to_dict(gcfg)
