"""What the false chain looks like (`generate.false_chain`): the FACO paper's subtle false reasoning
(the default), obvious errors (paper 001), or the generator's own answer (synthetic data, paper 002)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from openai_server import FakeOpenAI, default_responder
from test_generation import cfg_for, records

from faco.config import GenerateConfig
from faco.errors import ConfigError
from faco.generation.backends import ChainRequest, Completion, Sink, TemplateBackend, overlap_choice
from faco.generation.cache import ChainCache
from faco.generation.chains import leaks, mentions, parse_choice, plan
from faco.generation.estimate import estimate
from faco.generation.false_chains import SyntheticGenerated, SyntheticScored, WrongOption, strategy
from faco.generation.openai_backend import OpenAIBackend
from faco.generation.pairs import build_pairs
from faco.generation.prompts import render, template_path
from faco.generation.runner import Generator
from faco.paths import PROMPTS_DIR
from faco.records import PairRecord

ROOT = Path(__file__).resolve().parents[1]


def test_subtle_is_the_default_and_keeps_the_papers_prompt() -> None:
    assert GenerateConfig().false_chain == "subtle"
    assert template_path("faco-v1", "false") == PROMPTS_DIR / "faco-v1-false.txt"
    assert template_path("faco-v1", "true", "obvious") == PROMPTS_DIR / "faco-v1-true.txt"
    assert (PROMPTS_DIR / "faco-v1-false.txt").read_text().startswith(
        "Provide a step-by-step false explanation for the following incorrect answer. Write only explanation "
        "without any comments. Do not write anything about correct answer:")


def test_obvious_and_synthetic_prompts_differ_from_subtle() -> None:
    rec = records(1)[0]
    subtle, obvious = (render("faco-v1", "false", rec, "oven", k) for k in ("subtle", "obvious"))
    synthetic = render("faco-v1", "false", rec, "", "synthetic")
    assert len({subtle, obvious, synthetic}) == 3
    assert "### Incorrect Answer ###\noven" in obvious and "obvious" in obvious
    assert rec.question in synthetic and "Answer: (X)" in synthetic and "Incorrect" not in synthetic
    assert render("faco-v1", "true", rec, rec.answer, "obvious") == render("faco-v1", "true", rec, rec.answer)


def test_a_prompt_version_without_the_variant_fails_validation(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"no prompt template nosuch-true\.txt"):
        GenerateConfig(prompt_version="nosuch", false_chain="obvious")
    with pytest.raises(ValueError, match="false_chain"):
        GenerateConfig.model_validate({"false_chain": "loud"})


def test_obvious_and_subtle_chains_are_cached_separately(tmp_path: Path) -> None:
    """Same records, same cache: the obvious run reuses the true chains and pays for new false ones."""
    recs = records(6)
    with FakeOpenAI() as srv:
        subtle = cfg_for(srv, tmp_path)
        obvious = subtle.model_copy(update={"false_chain": "obvious"})
        runs: dict[str, list[tuple[int, list[PairRecord]]]] = {}
        for cfg in (subtle, obvious, obvious):
            before = sum(srv.paid.values())
            pairs, rejects = build_pairs(recs, Generator(OpenAIBackend(cfg), ChainCache(cfg.cache_path)), cfg)
            assert len(pairs) == 6 and not rejects
            runs.setdefault(cfg.false_chain, []).append((sum(srv.paid.values()) - before, pairs))
        assert [paid for paid, _ in runs["subtle"]] == [12]
        assert [paid for paid, _ in runs["obvious"]] == [6, 0]  # new false chains once, then all cached
        s_pairs, o_pairs = runs["subtle"][0][1], runs["obvious"][0][1]
        assert [p.false.answer for p in s_pairs] == [p.false.answer for p in o_pairs]  # same wrong options
        assert {p.generator["false_chain"] for p in o_pairs} == {"obvious"}
        assert estimate(recs, obvious).cached == 12


def test_template_backend_obvious_chains_are_blatant_and_never_name_the_answer() -> None:
    recs = records(8)
    subtle, obvious = GenerateConfig(), GenerateConfig(false_chain="obvious")
    s_pairs, _ = build_pairs(recs, Generator(TemplateBackend(), None), subtle)
    o_pairs, _ = build_pairs(recs, Generator(TemplateBackend(), None), obvious)
    assert len(o_pairs) == len(s_pairs) > 0
    for s, o in zip(s_pairs, o_pairs, strict=True):
        assert s.true == o.true and s.false.answer == o.false.answer and s.false.reasoning != o.false.reasoning
        assert "obviously" in o.false.reasoning and not mentions(o.false.reasoning, o.answer)


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("Step 1: both fit.\nAnswer: (B)", (1, "Step 1: both fit.")),
        ("It is (A).\nAnswer: (A)\nActually, the answer is: (C)", (2, "It is (A).\nAnswer: (A)\nActually, the")),
        ("Thinking.\nanswer: B.", (1, "Thinking.")),
        ("Reasons here.\nSo it must be oven", (1, "Reasons here.")),
        ("Answer: (Z)", None),
        ("No idea, could be fridge or oven.", None),
    ],
)
def test_parse_choice(reply: str, expected: tuple[int, str] | None) -> None:
    assert parse_choice(reply, ["fridge", "oven", "garage"]) == expected


def test_synthetic_false_chain_is_the_generators_own_answer(tmp_path: Path) -> None:
    """Synthetic responses keep whatever the generator chose, right or wrong; unparseable ones are retried."""
    recs = records(6)

    def responder(prompt: str, seed: int | None, n: int) -> str:
        if "Answer: (X)" not in prompt:
            return default_responder(prompt, seed, n)
        if recs[5].question in prompt:
            return "I cannot decide."  # never commits: rejected after the retries
        if recs[4].question in prompt and seed == 0:
            return "Hmm."  # first attempt unparseable, the regeneration answers
        return "Step 1: the first option fits.\nAnswer: (A)"

    with FakeOpenAI(responder=responder) as srv:
        cfg = cfg_for(srv, tmp_path, false_chain="synthetic", max_false_retries=2)
        pairs, rejects = build_pairs(recs, Generator(OpenAIBackend(cfg), ChainCache(cfg.cache_path)), cfg)
    assert [r.reason for r in rejects] == ["false chain: chooses no option after 3 attempts"]
    assert len(pairs) == 5
    for p in pairs:
        assert (p.false.answer_index, p.false.answer) == (0, p.choices[0])
        assert p.false.reasoning == "Step 1: the first option fits."
    # some synthetic answers are right: that is the point (answer (A) vs the gold option)
    assert any(p.false.answer == p.answer for p in pairs) == any(p.answer_index == 0 for p in pairs)


def test_template_backend_synthetic_answers_by_word_overlap() -> None:
    recs = records(6)
    pairs, rejects = build_pairs(recs, Generator(TemplateBackend(), None), GenerateConfig(false_chain="synthetic"))
    assert len(pairs) == 6 and not rejects
    for p in pairs:
        assert p.false.answer_index == overlap_choice(p.question, p.choices)
        assert p.false.answer == p.choices[p.false.answer_index] and "Answer:" not in p.false.reasoning
    assert overlap_choice("Where do you keep cold milk?\nOptions:\n(A) oven", ["oven", "cold fridge"]) == 1


def test_synthetic_rejects_code_items() -> None:
    from test_sources import study as make_study

    from faco.stages import ingest

    st = make_study(cap=3, sources=[{"name": "mbpp"}])
    code, _ = ingest.load_source(st, st.ingest.sources[0])
    items, rejects = plan(code[:3] + records(2), 0, "synthetic")
    assert len(items) == 2 and [r.reason for r in rejects] == ["synthetic: a code item has no options"] * 3
    with pytest.raises(ConfigError, match="no prompt template"):
        render("nosuch", "false", records(1)[0], "x", "obvious")


class _Scorer(TemplateBackend):
    """A backend that can score options (as the local transformers model can)."""

    def option_scores(self, requests: Sequence[ChainRequest]) -> list[list[float]]:
        return [[float(i == 0) for i in range(len(r.choices))] for r in requests]


@pytest.mark.parametrize(("chain", "labels", "backend", "kind", "reason"), [
    ("subtle", "score", TemplateBackend(), WrongOption, "names the correct answer"),
    ("obvious", "score", _Scorer(), WrongOption, "names the correct answer"),
    ("synthetic", "score", TemplateBackend(), SyntheticGenerated, "chooses no option"),
    ("synthetic", "generate", _Scorer(), SyntheticGenerated, "chooses no option"),
    ("synthetic", "score", _Scorer(), SyntheticScored, "disputes its own label (*WRONG ANSWER*)"),
])
def test_one_strategy_per_kind_of_false_chain(chain: str, labels: str, backend: TemplateBackend, kind: type,
                                              reason: str) -> None:
    """generate.false_chain (and, for synthetic labels, whether the backend scores options) picks the kind
    whose requests, accept rule and reject reason the retry loop uses."""
    picked = strategy(backend, GenerateConfig(false_chain=chain, synthetic_labels=labels))  # type: ignore[arg-type]
    assert isinstance(picked, kind) and picked.reject_reason == reason


def test_an_item_is_rejected_with_its_kinds_reason_after_the_last_attempt() -> None:
    """False chains that always name the correct answer: the item is asked max_false_retries + 1 times
    and rejected with the subtle kind's reason."""
    rec = records(1)[0]
    leaky = f"Step 1: so the answer is {rec.answer}."
    assert leaks(rec, leaky)
    asked: list[int] = []

    class Leaky(TemplateBackend):
        def complete(self, requests: Sequence[ChainRequest], sink: Sink) -> None:
            for i, r in enumerate(requests):
                if r.polarity == "false":
                    asked.append(r.attempt)
                sink(i, Completion(leaky if r.polarity == "false" else "Step 1: a true chain."))

    pairs, rejects = build_pairs([rec], Generator(Leaky(), None), GenerateConfig(max_false_retries=1))
    assert pairs == [] and asked == [0, 1]
    assert [r.reason for r in rejects] == ["false chain: names the correct answer after 2 attempts"]
