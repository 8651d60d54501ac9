"""One adapter per FACO source.

Every adapter normalises rows in the Hugging Face hub schema of its dataset. The offline mirror
readers (`faco.sources.mirror`) turn the mirror's files into rows of that same schema, so the hub
path and the mirror path share one normaliser.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from faco.records import Domain, SourceRecord


class RowRejected(Exception):
    """A row that cannot become a record; the message is the reason."""


Row = dict[str, Any]


def _text(value: Any, field_name: str) -> str:
    """A required text field (an integer is taken as its digits, e.g. an id)."""
    if value is None:
        raise RowRejected(f"{field_name}: missing")
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise RowRejected(f"{field_name}: not text (a {type(value).__name__})")
    text = str(value).strip()
    if not text:
        raise RowRejected(f"{field_name}: empty")
    if "\ufffd" in text:
        raise RowRejected(f"{field_name}: undecodable text (U+FFFD)")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise RowRejected(f"{field_name}: not valid Unicode (a lone surrogate)") from None
    return text


def _optional_text(value: Any, field_name: str) -> str | None:
    """An optional text field: None when absent or empty, else as `_text`."""
    if value is None or value == "":
        return None
    return _text(value, field_name)


def _texts(value: Any, field_name: str) -> list[Any]:
    """A field that must be a list (its items are checked where they are used)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise RowRejected(f"{field_name}: not a list (a {type(value).__name__})")
    return value


def _row_id(row: Row, key: str, index: int) -> str:
    """A row's own id where it has one, else its position in the split."""
    value = row.get(key)
    return str(index) if value is None or value == "" else _text(value, key)


def _mc(
    source: str,
    domain: Domain,
    rid: str,
    question: Any,
    choices: list[Any],
    answer_index: int | None,
    explanation: str | None = None,
) -> SourceRecord:
    q = _text(question, "question")
    opts = [_text(c, f"choices[{i}]") for i, c in enumerate(choices)]
    if len(opts) < 2:
        raise RowRejected("choices: fewer than two options")
    if answer_index is None or not 0 <= answer_index < len(opts):
        raise RowRejected("answer: not among the choices")
    if opts.count(opts[answer_index]) > 1:
        raise RowRejected("choices: the correct answer's text appears as another option too")
    return SourceRecord(
        id=f"{source}:{rid}",
        source=source,
        domain=domain,
        kind="mc",
        question=q,
        choices=opts,
        answer=opts[answer_index],
        answer_index=answer_index,
        explanation=explanation or None,
    )


def _answer_index(row: Row, field_name: str, labels: list[Any]) -> int | None:
    """The position of a row's answer label among `labels`; None for a label that is not one of them.

    A missing or empty answer field is rejected as missing (not as "not among the choices").
    """
    value = row.get(field_name)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise RowRejected(f"answer: missing (no {field_name})")
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise RowRejected(f"{field_name}: not a label (a {type(value).__name__})")
    key = str(value).strip()
    return labels.index(key) if key in labels else None


def _labelled(
    row: Row, source: str, domain: Domain, explanation: str | None, question_key: str
) -> SourceRecord:
    choices = row.get("choices") or {}
    if not isinstance(choices, dict):
        raise RowRejected(f"choices: not an object with label and text lists (a {type(choices).__name__})")
    labels = _texts(choices.get("label"), "choices.label")
    texts = _texts(choices.get("text"), "choices.text")
    if not texts:
        raise RowRejected("choices: missing")
    if len(labels) != len(texts) or not all(isinstance(label, str) for label in labels):
        raise RowRejected("choices.label: not one text label per option")
    idx = _answer_index(row, "answerKey", labels)
    return _mc(source, domain, _text(row.get("id"), "id"), row.get(question_key), texts, idx, explanation)


def commonsense_qa(row: Row, index: int) -> SourceRecord:
    return _labelled(row, "commonsense_qa", "commonsense", None, "question")


def openbookqa(row: Row, index: int) -> SourceRecord:
    fact = _optional_text(row.get("fact1"), "fact1")
    return _labelled(row, "openbookqa", "commonsense", fact, "question_stem")


def qasc(row: Row, index: int) -> SourceRecord:
    facts = [_optional_text(row.get(k), k) for k in ("fact1", "fact2")]
    explanation = " ".join(f for f in facts if f) or None
    return _labelled(row, "qasc", "knowledge", explanation, "question")


def qasc_openbook(row: Row, index: int) -> SourceRecord:
    """QASC with its two facts given in the question (open book): the answer is to be read, not known.

    Not a FACO source: the CPU mini study's, where a 135M model can answer from the text it is
    shown while it sits at chance on closed-book questions (docs/benchmarks.md).
    """
    facts = " ".join(_text(row.get(k), k) for k in ("fact1", "fact2"))
    rec = _labelled(row, "qasc_openbook", "knowledge", facts, "question")
    return rec.model_copy(update={"question": f"Facts: {facts}\nQuestion: {rec.question}"})


def quartz(row: Row, index: int) -> SourceRecord:
    return _labelled(row, "quartz", "reasoning", _optional_text(row.get("para"), "para"), "question")


def sciq(row: Row, index: int) -> SourceRecord:
    keys = ["correct_answer", "distractor1", "distractor2", "distractor3"]
    options = [_text(row.get(k), k) for k in keys]
    question = _text(row.get("question"), "question")
    # The hub rows have no id and the correct answer first: shuffle with a row-derived seed.
    rid = f"{index}"
    order = list(range(4))
    random.Random(f"sciq:{question}").shuffle(order)
    return _mc(
        "sciq",
        "knowledge",
        rid,
        question,
        [options[i] for i in order],
        order.index(0),
        _optional_text(row.get("support"), "support"),
    )


def copa(row: Row, index: int) -> SourceRecord:
    """COPA premise + cause/effect question -> a two-option question (SuperGLUE schema)."""
    question = row.get("question")
    ask = {"cause": "What was the cause?", "effect": "What happened as a result?"}.get(
        question if isinstance(question, str) else "")
    if ask is None:
        raise RowRejected("question: neither 'cause' nor 'effect'")
    label = row.get("label")
    idx = label if isinstance(label, int) and not isinstance(label, bool) else None
    rid = _text(row.get("idx", row.get("id")), "idx")
    return _mc("copa", "commonsense", rid, f"{_text(row.get('premise'), 'premise')} {ask}",
               [row.get("choice1"), row.get("choice2")], idx)


def winogrande(row: Row, index: int) -> SourceRecord:
    sentence = _text(row.get("sentence"), "sentence")
    if "_" not in sentence:
        raise RowRejected("sentence: no blank '_'")
    idx = _answer_index(row, "answer", ["1", "2"])
    rid = _row_id(row, "id", index)
    return _mc("winogrande", "commonsense", rid, sentence, [row.get("option1"), row.get("option2")], idx)


_AQUA_OPTION = re.compile(r"^\s*([A-E])\s*\)\s*(.*)$", re.S)


def aqua_rat(row: Row, index: int) -> SourceRecord:
    labels, texts = [], []
    for opt in _texts(row.get("options"), "options"):
        m = _AQUA_OPTION.match(opt) if isinstance(opt, str) else None
        if not m:
            raise RowRejected(f"options: unparseable option {opt!r}")
        labels.append(m.group(1))
        texts.append(m.group(2))
    if not texts:
        raise RowRejected("options: missing")
    idx = _answer_index(row, "correct", labels)
    return _mc(
        "aqua_rat",
        "reasoning",
        _row_id(row, "id", index),
        row.get("question"),
        texts,
        idx,
        _optional_text(row.get("rationale"), "rationale"),
    )


def mbpp(row: Row, index: int) -> SourceRecord:
    tests = "\n".join(_text(t, f"test_list[{i}]") for i, t in enumerate(_texts(row.get("test_list"), "test_list")))
    question = _text(row.get("text"), "text")
    if tests:
        question = f"{question}\nYour code should pass these tests:\n{tests}"
    return SourceRecord(
        id=f"mbpp:{_text(row.get('task_id'), 'task_id')}",
        source="mbpp",
        domain="programming",
        kind="code",
        question=question,
        answer=_text(row.get("code"), "code"),
    )


def conala(row: Row, index: int) -> SourceRecord:
    intent = row.get("rewritten_intent") or row.get("intent")
    rid = f"{_text(row.get('question_id'), 'question_id')}-{index}"
    return SourceRecord(
        id=f"conala:{rid}",
        source="conala",
        domain="programming",
        kind="code",
        question=_text(intent, "intent"),
        answer=_text(row.get("snippet"), "snippet"),
    )


NLI_LABELS = ("entailment", "neutral", "contradiction")  # the hub's ClassLabel order (0, 1, 2)


def multinli(row: Row, index: int) -> SourceRecord:
    """MultiNLI premise/hypothesis pair -> a three-option question (entailment/neutral/contradiction).

    Hub rows (`nyu-mll/multi_nli`) carry `pairID`; GLUE-schema rows (the offline mirror) carry `idx`.
    Label -1 (no gold majority) is rejected.
    """
    premise = _text(row.get("premise"), "premise")
    hypothesis = _text(row.get("hypothesis"), "hypothesis")
    label = row.get("label")
    if label == -1:
        raise RowRejected("label: -1 (no gold label)")
    if not isinstance(label, int) or isinstance(label, bool) or not 0 <= label < len(NLI_LABELS):
        raise RowRejected(f"label: not 0, 1 or 2 ({label!r})")
    rid = row.get("pairID")
    rid = f"idx{_text(row.get('idx'), 'pairID/idx')}" if rid is None or rid == "" else _text(rid, "pairID")
    question = (
        f"Premise: {premise}\nHypothesis: {hypothesis}\n"
        "Does the premise entail the hypothesis, contradict it, or neither?"
    )
    return _mc("multinli", "nli", str(rid), question, list(NLI_LABELS), label)


#: The hub branch where the dataset viewer keeps a Parquet copy of every dataset (script ones too).
PARQUET_REVISION = "refs/convert/parquet"


@dataclass(frozen=True)
class SourceAdapter:
    """A FACO source: its hub dataset, its domain, and its row normaliser.

    `parquet_config`: the hub copy is a loading script (which `datasets` 4+ refuses to run), so
    read that config of the hub's Parquet conversion instead.
    """

    name: str
    domain: Domain
    hub_path: str
    hub_name: str | None
    normalise: Callable[[Row, int], SourceRecord]
    hub_kwargs: dict[str, Any] = field(default_factory=dict)
    parquet_config: str | None = None

    def parquet_files(self, split: str, revision: str | None) -> str:
        """`hf://` glob of the Parquet conversion's files of `split` (at `revision`, default the branch)."""
        rev = quote(revision or PARQUET_REVISION, safe="")
        return f"hf://datasets/{self.hub_path}@{rev}/{self.parquet_config}/{split}/*.parquet"


SOURCES: dict[str, SourceAdapter] = {
    a.name: a
    for a in [
        SourceAdapter("qasc", "knowledge", "allenai/qasc", None, qasc),
        SourceAdapter("qasc_openbook", "knowledge", "allenai/qasc", None, qasc_openbook),
        SourceAdapter("sciq", "knowledge", "allenai/sciq", None, sciq),
        SourceAdapter("commonsense_qa", "commonsense", "tau/commonsense_qa", None, commonsense_qa),
        SourceAdapter("openbookqa", "commonsense", "allenai/openbookqa", "additional", openbookqa),
        SourceAdapter("winogrande", "commonsense", "allenai/winogrande", "winogrande_xl", winogrande),
        # Not a FACO source: COPA's SuperGLUE train split (the benchmark is its validation split),
        # two options a 135M model can tell apart, for the CPU mini study (docs/benchmarks.md).
        SourceAdapter("copa", "commonsense", "aps/super_glue", "copa", copa),
        SourceAdapter("aqua_rat", "reasoning", "deepmind/aqua_rat", "raw", aqua_rat),
        SourceAdapter("quartz", "reasoning", "allenai/quartz", None, quartz),
        SourceAdapter("conala", "programming", "neulab/conala", "curated", conala, parquet_config="curated"),
        SourceAdapter("mbpp", "programming", "google-research-datasets/mbpp", "full", mbpp),
        # Not a FACO source: MultiNLI, the general task of paper 002 (synthetic data vs HANS).
        SourceAdapter("multinli", "nli", "nyu-mll/multi_nli", None, multinli),
    ]
}
