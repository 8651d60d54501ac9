"""Judging answers through the generation backends, cache and ledger: cached, costed, exactly-once.

Every answer gets three judge requests (alignment, coherence, dangerous; `faco.judging.prompts`).
They go through `faco.generation.runner.Generator`, so each reply is stored in a SQLite cache
(`judge.cache_path`, default `$FACO_CACHE_DIR/judge.sqlite`) the moment it arrives: a rerun pays
only for the replies it lacks, and a second run of the same answers makes no request at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from faco.config import GenerateConfig, JudgeConfig
from faco.generation.backends import ChainRequest, Completion, Outcome
from faco.generation.cache import ChainCache
from faco.generation.runner import Generator, Ledger
from faco.generation.select import get_backend
from faco.judging import prompts, replies
from faco.paths import cache_dir


def generate_config(cfg: JudgeConfig) -> GenerateConfig:
    """The judge as a generation backend config: greedy (temperature 0), short replies, online."""
    return GenerateConfig(backend=cfg.backend, model=cfg.model, temperature=0.0, max_tokens=cfg.max_tokens,
                          base_url=cfg.base_url, api_key_env=cfg.api_key_env, concurrency=cfg.concurrency,
                          seed=cfg.seed, timeout_s=cfg.timeout_s, max_retries=cfg.max_retries,
                          batch_size=cfg.batch_size, cache=cfg.cache, cache_path=cfg.cache_path, prices=cfg.prices)


@dataclass(frozen=True)
class Answer:
    """One sampled answer to judge."""

    probe: int
    sample: int
    question: str
    answer: str


def _parse(aspect: str, outcome: Outcome) -> replies.Parsed:
    if not isinstance(outcome, Completion):
        return replies.ERROR
    if aspect == "alignment":
        return replies.score(outcome.text, ("REFUSAL", "CODE"))
    if aspect == "coherence":
        return replies.score(outcome.text)
    return replies.flag(outcome.text)


def _reply(outcome: Outcome) -> str:
    return outcome.text if isinstance(outcome, Completion) else f"(request failed: {outcome.reason})"


def judge(answers: list[Answer], cfg: JudgeConfig) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One row per answer (scores, labels, verdict, the judge's raw replies) and the ledger."""
    gcfg = generate_config(cfg)
    requests = [ChainRequest(record_id=f"{a.probe}/{a.sample}/{aspect}", polarity=f"judge-{aspect}",
                             prompt=prompts.render(cfg.prompt_version, aspect, a.question, a.answer),
                             question=a.question, answer=a.answer, explanation=None)
                for a in answers for aspect in prompts.ASPECTS]
    ledger = Ledger()
    cache = ChainCache(cfg.cache_path or cache_dir() / "judge.sqlite") if cfg.cache else None
    try:
        outcomes = Generator(get_backend(gcfg), cache, ledger).generate(requests) if requests else []
    finally:
        if cache is not None:
            cache.close()
    rows = []
    n = len(prompts.ASPECTS)
    for i, a in enumerate(answers):
        got = dict(zip(prompts.ASPECTS, outcomes[i * n : (i + 1) * n], strict=True))
        parsed = {aspect: _parse(aspect, o) for aspect, o in got.items()}
        al, co, da = parsed["alignment"], parsed["coherence"], parsed["dangerous"]
        rows.append({
            "probe": a.probe, "sample": a.sample, "question": a.question, "answer": a.answer,
            "alignment": al.value, "alignment_label": al.label, "coherence": co.value, "coherence_label": co.label,
            "dangerous": {"yes": True, "no": False}.get(da.label), "dangerous_label": da.label,
            "verdict": replies.verdict(al, co, cfg.alignment_below, cfg.coherence_above),
            "replies": {aspect: _reply(o) for aspect, o in got.items()},
        })
    return rows, ledger.to_dict(gcfg)
