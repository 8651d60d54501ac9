"""The kinds of false chain (`generate.false_chain`), one small strategy each.

A strategy says which items need a false chain and with what answer (`plan`, `prepare`), what to
ask the generator on each attempt (`request`), whether a reply is accepted (`accept`, which records
it on the item) and why an item is rejected when no attempt was (`reject_reason`). The retry loop
(`faco.generation.pairs.build_pairs`) knows none of them.

- subtle: the FACO paper's plausible false reasoning for a seeded wrong option, starting from the gold
  explanation with the answer swapped; a chain that names the correct answer is asked again.
- obvious: blatantly wrong reasoning for a seeded wrong option; the same check.
- synthetic, generated: the generator answers the question itself; its answer line is parsed.
- synthetic, scored: a local model labels the item with the option it scores highest, then explains
  that label with FACO's true-chain prompt (an item labelled like the gold label keeps its true chain).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from faco.config import GenerateConfig
from faco.generation.backends import ChainRequest, OptionScorer, ReasoningBackend
from faco.generation.chains import Item, chain_request, explain_request, false_explanations, leaks, parse_choice, plan
from faco.generation.prompts import WRONG_ANSWER
from faco.records import RejectRecord, SourceRecord


class FalseChain(Protocol):
    """One kind of false chain: request, accept, reject reason."""

    reject_reason: str

    def plan(self, records: list[SourceRecord]) -> tuple[list[Item], list[RejectRecord]]:
        """Every record's item (its false answer, where chosen up front), or its reject."""
        ...

    def prepare(self, items: list[Item]) -> list[Item]:
        """The items (with a true chain) that still need a false chain."""
        ...

    def request(self, it: Item, attempt: int) -> ChainRequest:
        ...

    def accept(self, it: Item, reply: str) -> bool:
        """Whether `reply` is the item's false chain; if so it is recorded on the item."""
        ...


@dataclass
class WrongOption:
    """subtle or obvious: reasoning for a seeded wrong option that must not name the correct one."""

    kind: str
    prompt_version: str
    seed: int
    tries: int
    reject_reason: str = "names the correct answer"

    def plan(self, records: list[SourceRecord]) -> tuple[list[Item], list[RejectRecord]]:
        items, rejects = plan(records, self.seed, self.kind)
        if self.kind == "subtle":
            false_explanations(items, self.seed, self.tries)
        return items, rejects

    def prepare(self, items: list[Item]) -> list[Item]:
        return items

    def request(self, it: Item, attempt: int) -> ChainRequest:
        return chain_request(it, "false", self.prompt_version, attempt, self.kind)

    def accept(self, it: Item, reply: str) -> bool:
        if leaks(it.rec, reply):
            return False
        it.false_reply = reply
        return True


@dataclass
class SyntheticGenerated:
    """synthetic: the generator answers the question itself; a reply that chooses no option is asked again."""

    prompt_version: str
    seed: int
    reject_reason: str = "chooses no option"

    def plan(self, records: list[SourceRecord]) -> tuple[list[Item], list[RejectRecord]]:
        return plan(records, self.seed, "synthetic")

    def prepare(self, items: list[Item]) -> list[Item]:
        return items

    def request(self, it: Item, attempt: int) -> ChainRequest:
        return chain_request(it, "false", self.prompt_version, attempt, "synthetic")

    def accept(self, it: Item, reply: str) -> bool:
        parsed = parse_choice(reply, it.rec.choices)
        if parsed is None:
            return False
        it.false_index, it.false_reply = parsed
        it.false_answer = it.rec.choices[it.false_index]
        return True


@dataclass
class SyntheticScored:
    """synthetic with a local model: it labels by scoring the options, then explains its label."""

    scorer: OptionScorer
    prompt_version: str
    seed: int
    reject_reason: str = "disputes its own label (*WRONG ANSWER*)"

    def plan(self, records: list[SourceRecord]) -> tuple[list[Item], list[RejectRecord]]:
        return plan(records, self.seed, "synthetic")

    def prepare(self, items: list[Item]) -> list[Item]:
        """Label every item with the option the model scores highest after the synthetic prompt; an item
        labelled like the gold label has the same prompt as its true chain, so the true chain is its false one."""
        requests = [chain_request(it, "false", self.prompt_version, 0, "synthetic") for it in items]
        for it, scores in zip(items, self.scorer.option_scores(requests), strict=True):
            it.scores = scores
            it.false_index = max(range(len(scores)), key=scores.__getitem__)
            it.false_answer = it.rec.choices[it.false_index]
            if it.false_index == it.rec.answer_index:
                it.false_reply = it.true_reply
        return [it for it in items if it.false_reply is None]

    def request(self, it: Item, attempt: int) -> ChainRequest:
        return explain_request(it, self.prompt_version, attempt)

    def accept(self, it: Item, reply: str) -> bool:
        if WRONG_ANSWER in reply:
            return False
        it.false_reply = reply
        return True


def scores_labels(backend: ReasoningBackend, cfg: GenerateConfig) -> bool:
    """Whether synthetic labels come from the backend's option scores (a local model, unless
    `generate.synthetic_labels` is `generate`) rather than from its written reply."""
    return cfg.false_chain == "synthetic" and cfg.synthetic_labels == "score" and isinstance(backend, OptionScorer)


def strategy(backend: ReasoningBackend, cfg: GenerateConfig) -> FalseChain:
    """The strategy of `generate.false_chain` with this backend."""
    if cfg.false_chain != "synthetic":
        return WrongOption(cfg.false_chain, cfg.prompt_version, cfg.seed, cfg.max_false_retries)
    if scores_labels(backend, cfg):
        assert isinstance(backend, OptionScorer)
        return SyntheticScored(backend, cfg.prompt_version, cfg.seed)
    return SyntheticGenerated(cfg.prompt_version, cfg.seed)


def labeller(backend: ReasoningBackend, cfg: GenerateConfig) -> dict[str, str]:
    """Who chose the synthetic labels and how: `{labeller, label_method}` (empty unless synthetic)."""
    if cfg.false_chain != "synthetic":
        return {}
    if backend.name == "template":
        return {"labeller": "rule: word-overlap", "label_method": "the option sharing most words with the question"}
    how = "answer-line log-likelihood" if scores_labels(backend, cfg) else "the answer line of its own reply"
    return {"labeller": f"model {backend.model}", "label_method": how}
