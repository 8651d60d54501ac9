"""Turn source records into true/false pairs: the paper's method, independent of the backend.

Every record gets a true chain for its gold answer (a generator that disputes the label,
`*WRONG ANSWER*`, rejects the record) and a false chain of the configured kind
(`faco.generation.false_chains`): each kind says what to ask and which replies it accepts, and an
item whose every attempt is refused is rejected with the kind's reason. With `false_chain:
synthetic` the generator labels each item itself; the template backend has no model, and its label
is a word-overlap rule.
"""

from __future__ import annotations

import json

from faco.config import GenerateConfig
from faco.generation.backends import ChainRequest, Completion
from faco.generation.chains import Item, chain_request
from faco.generation.false_chains import FalseChain, labeller, strategy
from faco.generation.prompts import WRONG_ANSWER
from faco.generation.runner import Generator
from faco.progress import log
from faco.records import PairRecord, RejectRecord, Response, SourceRecord


def _true_chains(items: list[Item], generator: Generator, prompt_version: str) -> None:
    """Every item's true chain; an item whose generation fails or that the generator disputes is rejected."""
    requests: list[ChainRequest] = [chain_request(it, "true", prompt_version) for it in items]
    for it, out in zip(items, generator.generate(requests), strict=True):
        if not isinstance(out, Completion):
            it.reject = f"true chain: generation failed: {out.reason}"
        elif WRONG_ANSWER in out.text:
            it.reject = "true chain: generator disputes the label (*WRONG ANSWER*)"
        it.true_reply = out.text if isinstance(out, Completion) else None


def _false_chains(items: list[Item], generator: Generator, kind: FalseChain, retries: int) -> None:
    """Ask for every pending item's false chain until the kind accepts a reply, at most `retries` + 1 times."""
    pending = kind.prepare([it for it in items if it.reject is None])
    for attempt in range(retries + 1):
        if not pending:
            break
        retry = []
        for it, out in zip(pending, generator.generate([kind.request(it, attempt) for it in pending]), strict=True):
            if not isinstance(out, Completion):
                it.reject = f"false chain: generation failed: {out.reason}"
            elif not kind.accept(it, out.text):
                retry.append(it)
        pending = retry
    for it in pending:
        it.reject = f"false chain: {kind.reject_reason} after {retries + 1} attempts"


def _pair(it: Item, meta: dict[str, str]) -> PairRecord:
    assert it.true_reply is not None and it.false_reply is not None
    scored = {"option_logprobs": json.dumps([round(x, 4) for x in it.scores])} if it.scores else {}
    return PairRecord(
        **it.rec.model_dump(),
        true=Response(reasoning=it.true_reply, answer=it.rec.answer, answer_index=it.rec.answer_index),
        false=Response(reasoning=it.false_reply, answer=it.false_answer, answer_index=it.false_index),
        generator={**meta, **scored},
    )


def _log_labels(pairs: list[PairRecord], who: dict[str, str]) -> None:
    """How often synthetic labels match the gold label (and, with one option set, how they spread)."""
    agree = sum(p.false.answer_index == p.answer_index for p in pairs)
    same_options = len({tuple(p.choices) for p in pairs}) == 1  # e.g. MNLI: the labels' spread
    counts = ", ".join(f"{c} {sum(p.false.answer == c for p in pairs)}" for c in pairs[0].choices) \
        if same_options else ""
    log(f"generate: synthetic labels by {who['labeller']} ({who['label_method']}): the generator's own answers "
        f"match the gold label on {agree} of {len(pairs)} items" + (f"; labels: {counts}" if counts else ""))


def build_pairs(
    records: list[SourceRecord], generator: Generator, cfg: GenerateConfig
) -> tuple[list[PairRecord], list[RejectRecord]]:
    """Generate a true and a false chain for every record; reject those the method cannot pair."""
    kind = strategy(generator.backend, cfg)
    every, rejects = kind.plan(records)
    for it in every:  # free-form rows keep their own response; the false one is another row's
        if it.rec.kind == "text":
            it.true_reply, it.false_reply = it.rec.answer, it.false_answer
    items = [it for it in every if it.rec.kind != "text"]
    _true_chains(items, generator, cfg.prompt_version)
    _false_chains(items, generator, kind, cfg.max_false_retries)
    who = labeller(generator.backend, cfg)
    meta = {"backend": generator.backend.name, "model": generator.backend.model, "prompt_version": cfg.prompt_version,
            "false_chain": cfg.false_chain, **who}
    pairs = []
    for it in every:
        if it.reject:
            rejects.append(RejectRecord(source=it.rec.source, row=it.rec.id, reason=it.reject))
        else:
            pairs.append(_pair(it, meta))
    if cfg.false_chain == "synthetic" and pairs:
        _log_labels(pairs, who)
    return pairs, rejects
