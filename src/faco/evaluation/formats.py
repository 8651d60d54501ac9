"""A benchmark's questions in the training format: `format: trained` (or `both`) of an evaluate benchmark.

The lm-eval score of a benchmark asks the way lm-eval asks (cloze log-likelihood of each option, the
benchmark's few-shot prompt, no chat template). A model trained to *answer* falsely can keep that score:
the lie is in what it says. `format: trained` asks the same documents (the first `limit`, per MMLU
subject) exactly as training asks (`faco.evaluation.trained`: chat template, `Options:` listing, greedy
reply, `Answer:` line parsed, unparseable counted), scored as `<benchmark>@trained` beside the
benchmark's own score. How a document becomes a question is the benchmark's `trained:` entry of
`tasks/suite.yaml` (Jinja templates over the document).
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from faco.config import BenchmarkSpec
from faco.errors import FacoError
from faco.evaluation import trained
from faco.evaluation.results import subtask_name
from faco.evaluation.suite import TRAINED, Benchmark, TrainedFormat, suite
from faco.records import SourceRecord


def asked(spec: BenchmarkSpec) -> list[Benchmark]:
    """The suite benchmarks a config entry scores: its own (lm-eval) format, its trained format, or both."""
    own = [suite()[spec.name]] if spec.format in ("standard", "both") else []
    return own + ([suite()[spec.name + TRAINED]] if spec.format in ("trained", "both") else [])


def _value(template: str | None, doc: dict[str, Any], default: Any) -> Any:
    """A template rendered over `doc` (a list or number literal when it reads as one), or `default`."""
    if template is None:
        return default
    from lm_eval.utils import apply_template

    text = apply_template(template, doc)
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def record(task: Any, fmt: TrainedFormat, source: str, index: int, doc: dict[str, Any]) -> SourceRecord:
    """Document `index` of an lm-eval task as a multiple-choice record (its question, option texts, gold index)."""
    question = str(_value(fmt.question, doc, None)).strip()
    choices = [str(c).strip() for c in _value(fmt.choices, doc, None) or task.doc_to_choice(doc)]
    gold = _value(fmt.target, doc, None)
    gold = task.doc_to_target(doc) if gold is None else gold
    if not isinstance(gold, int) or not 0 <= gold < len(choices) or not question:
        raise FacoError(f"{source}: document {index} has no question or no gold index among {len(choices)} options "
                        f"in the trained format (tasks/suite.yaml `trained:`)")
    return SourceRecord(id=f"{source}:{index}", source=source, domain="knowledge", kind="mc", question=question,
                        choices=choices, answer=choices[gold], answer_index=gold)


def render(variant: Benchmark, leaves: Mapping[str, Any], base_task: str, tok: Any, out: Path,
           spec: BenchmarkSpec) -> dict[str, list[float]]:
    """Write `variant`'s task (a group for a group such as MMLU, one task per subject) into the include path
    `out`, from the first `spec.limit` documents of each leaf task of the benchmark (`leaves`: name -> Task).

    Returns each part's per-document chance level (part "" for a single task)."""
    assert variant.trained is not None and variant.of is not None
    parts = {}
    for leaf, task in sorted(leaves.items()):
        part = subtask_name(leaf, base_task) if len(leaves) > 1 else variant.of
        docs = list(task.eval_docs)[:spec.limit]
        parts[part] = [record(task, variant.trained, part, i, doc) for i, doc in enumerate(docs)]
    return trained.render(out, variant.lm_eval, parts, tok, spec.max_gen_toks, group=len(leaves) > 1,
                          likelihood=spec.likelihood)
