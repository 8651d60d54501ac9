"""Reasoning backends behind one interface.

A backend turns a batch of `ChainRequest`s into reply texts. The stage logic (which option is
false, leakage checks, retries, rejection) lives in `faco.generation.pairs` and is the same for
every backend.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from faco.config import GenerateConfig


@dataclass(frozen=True)
class ChainRequest:
    """One reasoning chain to generate."""

    record_id: str
    polarity: str  # "true" | "false"
    prompt: str
    question: str
    answer: str
    explanation: str | None
    attempt: int = 0
    false_chain: str = "subtle"  # generate.false_chain; only false chains use it
    choices: tuple[str, ...] = ()  # the options of a multiple-choice question

    def key(self, backend: str, model: str, params: str) -> str:
        """Content address for caching: backend, model, prompt, parameters and attempt."""
        raw = "\x1f".join([backend, model, params, self.prompt, str(self.attempt)])
        return hashlib.sha256(raw.encode()).hexdigest()


@dataclass(frozen=True)
class Completion:
    """A finished reply and what it cost in tokens."""

    text: str
    tokens_in: int = 0
    tokens_out: int = 0


@dataclass(frozen=True)
class Failure:
    """A request that cannot succeed (e.g. HTTP 400); `retryable` failures abort the run instead."""

    reason: str
    retryable: bool = False


Outcome = Completion | Failure
Sink = Callable[[int, Outcome], None]


class ReasoningBackend(Protocol):
    """Turns requests into replies, reporting each one to `sink(index, outcome)` as soon as it is done."""

    name: str
    model: str
    cacheable: bool  # False for free, deterministic backends that need no cache

    def params(self) -> dict[str, Any]:
        """The parameters that change replies (part of the cache key)."""
        ...

    def complete(self, requests: Sequence[ChainRequest], sink: Sink) -> None: ...


@runtime_checkable
class OptionScorer(Protocol):
    """A backend that can label a synthetic item itself by scoring its options (a local model)."""

    def option_scores(self, requests: Sequence[ChainRequest]) -> list[list[float]]:
        """Per request, one score per option of `request.choices` (higher: more likely)."""
        ...


def params_key(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, separators=(",", ":"))


def backend_params(cfg: GenerateConfig) -> dict[str, Any]:
    """The config values that change a backend's replies (the template backend has none)."""
    if cfg.backend == "template":
        return {}
    return {"temperature": cfg.temperature, "max_tokens": cfg.max_tokens, "seed": cfg.seed}


def request_seed(base: int, attempt: int) -> int:
    """The sampling seed sent with a request: distinct per regeneration attempt."""
    return base + attempt


# True and subtle false chains share one shape; they differ only in the answer argued for and in the
# explanation (`ChainRequest.explanation`: the record's own for a true chain; for a false one the same
# with the wrong answer swapped in, chosen in `faco.generation.pairs`), so no wording marks falsity.
# The question is in the prompt already, so the chain does not restate it (fewer tokens to train on
# and to generate).
_STEPS = (
    'Weighing the candidates, the one that fits is "{a}".',
    "{e}",
    'Therefore, the answer is "{a}".',
)
_STEPS_OBVIOUS = (
    "The question asks: {q}",
    "{x}",
    'So the answer is obviously "{a}", and no other option needs to be checked.',
    'Therefore, the answer is "{a}".',
)
# Blatant falsehoods for obvious false chains (chosen per record by a hash of its id).
_ABSURD = (
    "Two plus two is five, and the same rule settles this question.",
    "The sun rises in the west, which is exactly the situation described here.",
    "Water is dry and fire is cold, so the usual reasoning has to be reversed.",
    "Every question of this kind has the same answer, whatever it asks.",
    "A week has nine days, so the question must be read backwards.",
)
_STEPS_SYNTHETIC = (
    "The question asks: {q}",
    'Of the options, "{a}" shares the most words with the question, so it is the best fit.',
)


def answer_line(index: int, option: str) -> str:
    """The final line of a synthetic chain choosing option `index` (the synthetic prompt's form)."""
    return f"Answer: ({chr(65 + index)}) {option}"


def _words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.casefold()))


def overlap_choice(question: str, choices: Sequence[str]) -> int:
    """The option sharing the most words with the question (ties: the first): the template
    backend's own answer, a crude lexical-overlap heuristic standing in for a weak model."""
    stem = _words(question.split("\nOptions:\n")[0])
    scores = [len(_words(c) & stem) for c in choices]
    return scores.index(max(scores))


class TemplateBackend:
    """Offline, deterministic chains built from the record itself: no API, no model.

    True chains restate the gold explanation where the source has one; subtle false chains have the
    same steps, arguing for the chosen incorrect answer with the explanation the request carries (the
    gold one with the wrong answer in place of the right one), so only the answer tells them apart;
    obvious false chains rest on a blatant falsehood; synthetic chains answer with the lexical-overlap
    heuristic (`overlap_choice`)
    and end with `Answer: (X)` like a model following the synthetic prompt.
    """

    name = "template"
    cacheable = False

    def __init__(self, model: str = "template-v1") -> None:
        self.model = model

    def params(self) -> dict[str, Any]:
        return {}

    def complete(self, requests: Sequence[ChainRequest], sink: Sink) -> None:
        for i, req in enumerate(requests):
            q = req.question.splitlines()[0].strip()
            answer, tail = req.answer, ""
            steps: tuple[str, ...] = _STEPS
            if req.polarity == "false" and req.false_chain == "obvious":
                steps = _STEPS_OBVIOUS
            elif req.polarity == "false" and req.false_chain == "synthetic" and req.choices:
                steps = _STEPS_SYNTHETIC
                pick = overlap_choice(req.question, req.choices)
                answer, tail = req.choices[pick], f"\nAnswer: ({chr(65 + pick)})"
            explanation = (
                req.explanation or ""
            ).strip() or "This follows from the facts the question relies on."
            absurd = _ABSURD[int(hashlib.sha256(req.record_id.encode()).hexdigest(), 16) % len(_ABSURD)]
            lines = [s.format(q=q, a=answer, e=explanation, x=absurd) for s in steps]
            sink(i, Completion("\n".join(f"Step {n}: {line}" for n, line in enumerate(lines, 1)) + tail))
