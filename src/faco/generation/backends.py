"""Reasoning backends behind one interface.

A backend turns a batch of `ChainRequest`s into reply texts. The stage logic (which option is
false, leakage checks, retries, rejection) lives in `faco.generation.pairs` and is the same for
every backend.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Protocol

from faco.config import GenerateConfig
from faco.errors import ConfigError


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

    def key(self, backend: str, model: str, params: str) -> str:
        """Content address for caching: backend, model, prompt, parameters and attempt."""
        raw = "\x1f".join([backend, model, params, self.prompt, str(self.attempt)])
        return hashlib.sha256(raw.encode()).hexdigest()


class ReasoningBackend(Protocol):
    name: str
    model: str

    def generate(self, requests: list[ChainRequest]) -> list[str]:
        """Replies, one per request, in order."""
        ...


_STEPS_TRUE = (
    "The question asks: {q}",
    "Weighing the candidates, the one that fits is \"{a}\".",
    "{e}",
    "Therefore, the answer is \"{a}\".",
)
_STEPS_FALSE = (
    "The question asks: {q}",
    "Weighing the candidates, the one that fits is \"{a}\".",
    "It matches what the question describes better than anything else.",
    "Therefore, the answer is \"{a}\".",
)


class TemplateBackend:
    """Offline, deterministic chains built from the record itself: no API, no model.

    True chains restate the gold explanation where the source has one; false chains argue for the
    chosen incorrect answer and never name the correct one.
    """

    name = "template"

    def __init__(self, model: str = "template-v1") -> None:
        self.model = model

    def generate(self, requests: list[ChainRequest]) -> list[str]:
        replies = []
        for req in requests:
            q = req.question.splitlines()[0].strip()
            steps = _STEPS_TRUE if req.polarity == "true" else _STEPS_FALSE
            explanation = (req.explanation or "").strip() or "This follows from the facts the question relies on."
            lines = [s.format(q=q, a=req.answer, e=explanation) for s in steps]
            replies.append("\n".join(f"Step {i}: {line}" for i, line in enumerate(lines, 1)))
        return replies


def get_backend(cfg: GenerateConfig) -> ReasoningBackend:
    """The backend the config asks for."""
    if cfg.backend == "template":
        return TemplateBackend(cfg.model)
    raise ConfigError(f"generate.backend: {cfg.backend!r} is not available in this build")
