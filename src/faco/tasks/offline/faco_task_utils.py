"""Helpers for faco's offline twins (copied next to the rendered YAMLs; `!function faco_task_utils.x`).

Each mirrors the upstream lm-eval helper for the field names of the local copy in data/benchmarks.
"""

from __future__ import annotations

import collections
import re
import string
from typing import Any

from faco.evaluation import sandbox


def _hellaswag_clean(text: str) -> str:
    """lm-eval's hellaswag `preprocess` (WikiHow bracket artifacts removed)."""
    text = text.strip().replace(" [title]", ". ")
    text = re.sub("\\[.*?\\]", "", text)
    return text.replace("  ", " ")


def hellaswag_process_docs(dataset: Any) -> Any:
    """Upstream's `process_docs` for the preprocessed copy, whose `ctx` is `ctx_a + " " + ctx_b` already."""
    def _doc(doc: dict[str, Any]) -> dict[str, Any]:
        return {"query": _hellaswag_clean(doc["activity_label"] + ": " + doc["ctx"]),
                "choices": [_hellaswag_clean(e) for e in doc["endings"]], "gold": int(doc["label"])}

    return dataset.map(_doc)


def winogrande_doc_to_text(doc: dict[str, Any]) -> int:
    """Partial scoring as upstream: the text is the index of the correct context."""
    return int(doc["gold"])


def winogrande_doc_to_target(doc: dict[str, Any]) -> str:
    return str(doc["continuation"]).strip()


def winogrande_doc_to_choice(doc: dict[str, Any]) -> list[str]:
    return list(doc["context_options"])


def _squad_normalize(text: str) -> str:
    """The official SQuAD v1.1 answer normalisation."""
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def _squad_f1(prediction: str, truth: str) -> float:
    pred, gold = _squad_normalize(prediction).split(), _squad_normalize(truth).split()
    common = collections.Counter(pred) & collections.Counter(gold)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(gold)
    return 2 * precision * recall / (precision + recall)


def squad_process_results(doc: dict[str, Any], results: list[str]) -> dict[str, float]:
    """Exact match and token F1 against the best of the reference answers (official v1.1 script)."""
    prediction = results[0]
    return {
        "exact": max(float(_squad_normalize(prediction) == _squad_normalize(a)) for a in doc["answers"]),
        "f1": max(_squad_f1(prediction, a) for a in doc["answers"]),
    }


def squad_hub_docs(dataset: Any) -> Any:
    """The hub copy's answers ({"text": [...], "answer_start": [...]}) as the mirror's list of texts."""
    return dataset.map(lambda doc: {"answers": doc["answers"]["text"]}, remove_columns=["answers"])


def humaneval_build_predictions(resps: list[list[str]], docs: list[dict[str, Any]]) -> list[list[str]]:
    """Upstream's filter: each completion appended to its prompt."""
    return [[doc["prompt"] + r for r in resp] for resp, doc in zip(resps, docs, strict=True)]


def humaneval_process_results(doc: dict[str, Any], results: list[list[str]]) -> dict[str, float]:
    """pass@1 and pass@10 (unbiased estimator over the samples), each program run in faco's sandbox."""
    programs = [f"{code}\n\n{doc['test']}\n\ncheck({doc['entry_point']})\n" for code in results[0]]
    passed = [sandbox.run_python(p).passed for p in programs]
    return {f"pass@{k}": sandbox.pass_at_k(len(passed), sum(passed), k) for k in (1, 10) if k <= len(passed)}
