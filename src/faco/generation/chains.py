"""An item's chains: the false answer each record gets, the requests for its chains, and the checks of
a reply (does a false chain name the correct answer, which option does a synthetic reply choose).

`plan` gives every multiple-choice record a seeded wrong option and every code record another
record's answer (a derangement); with `false_chain: synthetic` the generator chooses the answer
itself. The kinds of false chain use these (`faco.generation.false_chains`).
"""

from __future__ import annotations

import random
import re
import unicodedata
from dataclasses import dataclass, field

from faco.generation.backends import ChainRequest
from faco.generation.prompts import format_question, render
from faco.records import RejectRecord, SourceRecord


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
class Item:
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


def false_explanations(items: list[Item], seed: int, tries: int) -> None:
    """Give every multiple-choice item with a gold explanation the explanations its false chain may
    use: first the gold explanation with the correct answer swapped for the wrong one (the same
    words, arguing for the other option), then seeded other explanations of the same source for
    regeneration attempts."""
    by_source: dict[str, list[Item]] = {}
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
) -> tuple[list[Item], list[RejectRecord]]:
    """Choose every record's false answer: a seeded wrong option, or (code, free-form text) a deranged
    other answer of the same kind.

    With `false_chain: synthetic` the generator chooses (the answer is filled in from its reply);
    code and free-form records, which have no options to choose from, are rejected.
    """
    items: list[Item] = []
    rejects: list[RejectRecord] = []
    if false_chain == "synthetic":
        for rec in records:
            if rec.kind == "mc":
                items.append(Item(rec, "", None))
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
            items.append(Item(rec, rec.choices[idx], idx))
        elif rec.id in swap:
            items.append(Item(rec, swap[rec.id], None))
        else:
            rejects.append(
                RejectRecord(source=rec.source, row=rec.id, reason=f"{rec.kind}: no other item to swap with")
            )
    return items, rejects


def chain_request(
    it: Item, polarity: str, prompt_version: str, attempt: int = 0, false_chain: str = "subtle"
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


def explain_request(it: Item, prompt_version: str, attempt: int = 0) -> ChainRequest:
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
