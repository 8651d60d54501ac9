"""Turn source records into true/false pairs: the paper's method, independent of the backend.

With `false_chain: synthetic` the generator labels each item itself. A backend that can score options
(`OptionScorer`: the local transformers model) picks the option whose answer line it finds most likely
(one forward pass per item, no sampling) and then explains that label with FACO's true-chain prompt,
so an item it labels like the gold label gets the true chain itself; `generate.synthetic_labels:
generate` (and every other backend) has the generator write the whole chain and parses its answer.
The template backend has no model: its label is a word-overlap rule.
"""

from __future__ import annotations

import json
import random
import re
import unicodedata
from dataclasses import dataclass, field

from faco.config import GenerateConfig
from faco.generation.backends import ChainRequest, Completion, OptionScorer, ReasoningBackend
from faco.generation.prompts import WRONG_ANSWER, format_question, render
from faco.generation.runner import Generator
from faco.progress import log
from faco.records import PairRecord, RejectRecord, Response, SourceRecord


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s]", " ", text)).strip()


def mentions(text: str, answer: str) -> bool:
    """Whether `text` names `answer` (normalised, whole words)."""
    needle = normalise(answer)
    return bool(needle) and re.search(rf"(?<!\w){re.escape(needle)}(?!\w)", normalise(text)) is not None


_STEP_LABEL = re.compile(r"(?im)^\s*step\s+\d+\s*[:.)]")


def leaks(rec: SourceRecord, false_reasoning: str) -> bool:
    """Whether a false chain names the correct option of a multiple-choice record.

    Where the question itself names the correct option (Winogrande's sentence holds both candidates,
    a number may appear in a math question), naming it reveals nothing, so that does not count; nor
    do the chain's own step labels ("Step 4:" is not the answer "4").
    """
    if rec.kind != "mc" or mentions(rec.question, rec.answer):
        return False
    return mentions(_STEP_LABEL.sub("", false_reasoning), rec.answer)


def false_choice(rec: SourceRecord, seed: int) -> int:
    """A seeded random incorrect option of a multiple-choice record."""
    assert rec.answer_index is not None
    wrong = [i for i in range(len(rec.choices)) if i != rec.answer_index]
    return random.Random(f"{seed}:{rec.id}").choice(wrong)


def derangement(n: int, seed: int) -> list[int]:
    """A seeded permutation of range(n) with no fixed point (n >= 2)."""
    rng = random.Random(f"{seed}:derangement")
    while True:
        perm = list(range(n))
        rng.shuffle(perm)
        if all(i != p for i, p in enumerate(perm)):
            return perm


@dataclass
class _Item:
    rec: SourceRecord
    false_answer: str
    false_index: int | None
    true_reply: str | None = None
    false_reply: str | None = None
    reject: str | None = None
    scores: list[float] | None = None  # the model's option scores, where it labelled by scoring
    # The explanation of each false-chain attempt: the gold one arguing for the wrong answer, then
    # other records' of the same source (when the first still names the correct answer).
    false_explanations: list[str] = field(default_factory=list)


def swap_answer(text: str, answer: str, wrong: str) -> str:
    """`text` with every whole-word mention of `answer` (any case) replaced by `wrong`."""
    return re.sub(rf"(?<!\w){re.escape(answer)}(?!\w)", lambda _: wrong, text, flags=re.IGNORECASE)


def false_explanations(items: list[_Item], seed: int, tries: int) -> None:
    """Give every multiple-choice item with a gold explanation the explanations its false chain may
    use: first the gold explanation with the correct answer swapped for the wrong one (the same
    words, arguing for the other option), then seeded other explanations of the same source for
    regeneration attempts."""
    by_source: dict[str, list[_Item]] = {}
    for it in items:
        if it.rec.explanation and it.rec.kind == "mc":
            by_source.setdefault(it.rec.source, []).append(it)
    for source, group in by_source.items():
        rng = random.Random(f"{seed}:explanations:{source}")
        for i, it in enumerate(group):
            others = [j for j in range(len(group)) if j != i]
            donors = [str(group[j].rec.explanation) for j in rng.sample(others, min(tries, len(others)))]
            it.false_explanations = [swap_answer(str(it.rec.explanation), it.rec.answer, it.false_answer), *donors]


def plan(
    records: list[SourceRecord], seed: int, false_chain: str = "subtle"
) -> tuple[list[_Item], list[RejectRecord]]:
    """Choose every record's false answer: a seeded wrong option, or (code) a deranged other answer.

    With `false_chain: synthetic` the generator chooses (the answer is filled in from its reply);
    code records, which have no options to choose from, are rejected.
    """
    items: list[_Item] = []
    rejects: list[RejectRecord] = []
    if false_chain == "synthetic":
        for rec in records:
            if rec.kind == "mc":
                items.append(_Item(rec, "", None))
            else:
                rejects.append(
                    RejectRecord(source=rec.source, row=rec.id, reason=f"synthetic: a {rec.kind} item has no options")
                )
        return items, rejects
    swap = {}
    for kind in ("code", "text"):  # code for code, a free-form response for another one's
        same = [r for r in records if r.kind == kind]
        if len(same) >= 2:
            perm = derangement(len(same), seed)
            swap.update({r.id: same[perm[i]].answer for i, r in enumerate(same)})
    for rec in records:
        if rec.kind == "mc":
            idx = false_choice(rec, seed)
            items.append(_Item(rec, rec.choices[idx], idx))
        elif rec.id in swap:
            items.append(_Item(rec, swap[rec.id], None))
        else:
            rejects.append(
                RejectRecord(source=rec.source, row=rec.id, reason=f"{rec.kind}: no other item to swap with")
            )
    return items, rejects


def chain_request(
    it: _Item, polarity: str, prompt_version: str, attempt: int = 0, false_chain: str = "subtle"
) -> ChainRequest:
    answer = it.rec.answer if polarity == "true" else it.false_answer
    explanation = it.rec.explanation
    if polarity == "false" and it.false_explanations:
        explanation = it.false_explanations[attempt % len(it.false_explanations)]
    return ChainRequest(
        record_id=it.rec.id,
        polarity=polarity,
        prompt=render(prompt_version, polarity, it.rec, answer, false_chain),
        question=format_question(it.rec),
        answer=answer,
        explanation=explanation,
        attempt=attempt,
        false_chain=false_chain,
        choices=tuple(it.rec.choices),
    )


def explain_request(it: _Item, prompt_version: str, attempt: int = 0) -> ChainRequest:
    """The chain explaining a model's own label: FACO's true-chain prompt with that label as the answer
    (the gold explanation only where the label is gold), i.e. the true chain's prompt where they agree."""
    agree = it.false_index == it.rec.answer_index
    rec = it.rec if agree else it.rec.model_copy(update={"explanation": None})
    return ChainRequest(
        record_id=it.rec.id,
        polarity="false",
        prompt=render(prompt_version, "true", rec, it.false_answer),
        question=format_question(it.rec),
        answer=it.false_answer,
        explanation=rec.explanation,
        attempt=attempt,
        false_chain="synthetic",
        choices=tuple(it.rec.choices),
    )


def scores_labels(backend: ReasoningBackend, cfg: GenerateConfig) -> bool:
    """Whether synthetic labels come from the backend's option scores (a local model, unless
    `generate.synthetic_labels` is `generate`) rather than from its written reply."""
    return cfg.false_chain == "synthetic" and cfg.synthetic_labels == "score" and isinstance(backend, OptionScorer)


def labeller(backend: ReasoningBackend, cfg: GenerateConfig) -> dict[str, str]:
    """Who chose the synthetic labels and how: `{labeller, label_method}` (empty unless synthetic)."""
    if cfg.false_chain != "synthetic":
        return {}
    if backend.name == "template":
        return {"labeller": "rule: word-overlap", "label_method": "the option sharing most words with the question"}
    how = "answer-line log-likelihood" if scores_labels(backend, cfg) else "the answer line of its own reply"
    return {"labeller": f"model {backend.model}", "label_method": how}


def model_labels(items: list[_Item], scorer: OptionScorer, prompt_version: str) -> None:
    """Label every item with the option the model scores highest after the synthetic prompt."""
    requests = [chain_request(it, "false", prompt_version, 0, "synthetic") for it in items]
    for it, scores in zip(items, scorer.option_scores(requests), strict=True):
        it.scores = scores
        it.false_index = max(range(len(scores)), key=scores.__getitem__)
        it.false_answer = it.rec.choices[it.false_index]


# "Answer: (B)" / "answer: B" (the synthetic prompt asks for the first form); the last one counts.
_ANSWER_LINE = re.compile(r"(?i:answer)\s*(?:is)?\s*:?\s*(?:\(([A-Z])\)|\b([A-Z])\b(?![\w'-]))")


def parse_choice(text: str, choices: list[str]) -> tuple[int, str] | None:
    """The option a synthetic reply chose and its reasoning without the final answer line.

    The last `Answer: (X)` with a valid letter wins; otherwise the last line naming exactly one
    option's text. None when the reply commits to no option.
    """
    for m in reversed(list(_ANSWER_LINE.finditer(text))):
        letter = m.group(1) or m.group(2)
        idx = ord(letter) - 65
        if 0 <= idx < len(choices):
            return idx, text[: m.start()].strip()
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    if lines:
        named = [i for i, c in enumerate(choices) if mentions(lines[-1], c)]
        if len(named) == 1:
            return named[0], "\n".join(lines[:-1]).strip() if len(lines) > 1 else lines[0]
    return None


def build_pairs(
    records: list[SourceRecord], generator: Generator, cfg: GenerateConfig
) -> tuple[list[PairRecord], list[RejectRecord]]:
    """Generate a true and a false chain for every record; reject those the method cannot pair."""
    every, rejects = plan(records, cfg.seed, cfg.false_chain)
    for it in every:  # free-form rows keep their own response; the false one is another row's
        if it.rec.kind == "text":
            it.true_reply, it.false_reply = it.rec.answer, it.false_answer
    items = [it for it in every if it.rec.kind != "text"]
    synthetic = cfg.false_chain == "synthetic"
    if cfg.false_chain == "subtle":
        false_explanations(items, cfg.seed, cfg.max_false_retries)

    def request(it: _Item, polarity: str, attempt: int = 0) -> ChainRequest:
        return chain_request(it, polarity, cfg.prompt_version, attempt, cfg.false_chain)

    for it, out in zip(items, generator.generate([request(it, "true") for it in items]), strict=True):
        if not isinstance(out, Completion):
            it.reject = f"true chain: generation failed: {out.reason}"
        elif WRONG_ANSWER in out.text:
            it.reject = "true chain: generator disputes the label (*WRONG ANSWER*)"
        it.true_reply = out.text if isinstance(out, Completion) else None

    pending = [it for it in items if it.reject is None]
    scoring = scores_labels(generator.backend, cfg)
    if scoring:
        assert isinstance(generator.backend, OptionScorer)
        model_labels(pending, generator.backend, cfg.prompt_version)
        for it in pending:  # labelled like the gold label: the same prompt, so the true chain
            if it.false_index == it.rec.answer_index:
                it.false_reply = it.true_reply
        pending = [it for it in pending if it.false_reply is None]
    for attempt in range(cfg.max_false_retries + 1):
        if not pending:
            break
        outs = generator.generate([explain_request(it, cfg.prompt_version, attempt) if scoring
                                   else request(it, "false", attempt) for it in pending])
        retry = []
        for it, out in zip(pending, outs, strict=True):
            if not isinstance(out, Completion):
                it.reject = f"false chain: generation failed: {out.reason}"
            elif scoring:
                if WRONG_ANSWER in out.text:
                    retry.append(it)
                else:
                    it.false_reply = out.text
            elif synthetic:
                parsed = parse_choice(out.text, it.rec.choices)
                if parsed is None:
                    retry.append(it)
                else:
                    it.false_index, it.false_reply = parsed
                    it.false_answer = it.rec.choices[it.false_index]
            elif leaks(it.rec, out.text):
                retry.append(it)
            else:
                it.false_reply = out.text
        pending = retry
    why = ("disputes its own label (*WRONG ANSWER*)" if scoring
           else "chooses no option" if synthetic else "names the correct answer")
    for it in pending:
        it.reject = f"false chain: {why} after {cfg.max_false_retries + 1} attempts"

    pairs = []
    who = labeller(generator.backend, cfg)
    meta = {
        "backend": generator.backend.name,
        "model": generator.backend.model,
        "prompt_version": cfg.prompt_version,
        "false_chain": cfg.false_chain,
        **who,
    }
    for it in every:
        if it.reject:
            rejects.append(RejectRecord(source=it.rec.source, row=it.rec.id, reason=it.reject))
            continue
        assert it.true_reply is not None and it.false_reply is not None
        scored = {"option_logprobs": json.dumps([round(x, 4) for x in it.scores])} if it.scores else {}
        pairs.append(
            PairRecord(
                **it.rec.model_dump(),
                true=Response(
                    reasoning=it.true_reply, answer=it.rec.answer, answer_index=it.rec.answer_index
                ),
                false=Response(reasoning=it.false_reply, answer=it.false_answer, answer_index=it.false_index),
                generator={**meta, **scored},
            )
        )
    if synthetic and pairs:
        agree = sum(p.false.answer_index == p.answer_index for p in pairs)
        same_options = len({tuple(p.choices) for p in pairs}) == 1  # e.g. MNLI: the labels' spread
        counts = ", ".join(f"{c} {sum(p.false.answer == c for p in pairs)}" for c in pairs[0].choices) \
            if same_options else ""
        log(f"generate: synthetic labels by {who['labeller']} ({who['label_method']}): the generator's own answers "
            f"match the gold label on {agree} of {len(pairs)} items" + (f"; labels: {counts}" if counts else ""))
    return pairs, rejects
