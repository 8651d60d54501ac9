"""Asking multiple-choice questions exactly as training asks them: the *trained format*.

A corruption study trains on one way of asking: the question, an `Options:` listing, under the chat
template (`training.data.prompt_text(tokenizer, generation.prompts.format_question(record))`), and a
response ending in `Answer: <option>`. Every question asked this way becomes one lm-eval document,
scored two ways by one task (`HeldoutTask`, in `heldout_task.py`):

- `acc_ll`: the option whose training answer line (`Answer: <option>`) is most likely (one forward pass
  per option; a benchmark's `likelihood: false` skips it);
- `acc_gen`: the option named by the last `Answer:` line of the greedy reply (the score); a reply
  naming no single option is wrong and counted in `unparsed`.

Shared by `heldout` (the study's own held-out questions) and by the trained-format variant of any
multiple-choice benchmark with a `trained:` entry in `tasks/suite.yaml` (`format: trained`, scored
as `<benchmark>@trained`; `faco.evaluation.formats`). The task YAMLs and data files are written into
the evaluation's temporary include path, so these run through the same harness, cache and samples as
every other benchmark.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from faco.generation.prompts import format_question
from faco.records import SourceRecord

DEFAULT_MAX_GEN_TOKS = 256
METRICS = (("acc_gen", True), ("acc_ll", True), ("unparsed", False))
SHIM = "faco_heldout_task.py"
_ANSWER_LINE = re.compile(r"(?im)^[ \t]*answer[ \t]*:[ \t]*(.*?)[ \t]*$")
_LETTER = re.compile(r"\(?([A-Z])\)?(?:[.:)]?\s+(.*))?")


def document(rec: SourceRecord, tok: Any) -> dict[str, Any]:
    """One lm-eval document: the training prompt, the answer lines to score, the option texts, the gold index."""
    from faco.training.data import prompt_text

    return {"id": rec.id, "prompt": prompt_text(tok, format_question(rec)),
            "choices": [f"Answer: {c}" for c in rec.choices], "options": list(rec.choices),
            "gold": rec.answer_index}


def _norm(text: str) -> str:
    return " ".join(text.casefold().split()).rstrip(".")


def parse_answer(reply: str, options: list[str]) -> int | None:
    """The option the reply's last `Answer:` line names: by its text (as trained), else by its letter.

    None when there is no answer line or it names no single option.
    """
    lines = list(_ANSWER_LINE.finditer(reply))
    if not lines:
        return None
    said = lines[-1].group(1)
    exact = [i for i, o in enumerate(options) if _norm(o) == _norm(said)]
    if len(exact) == 1:
        return exact[0]
    letter = _LETTER.fullmatch(said.strip())
    if letter:
        idx = ord(letter.group(1)) - 65
        rest = letter.group(2)
        if idx < len(options) and (rest is None or _norm(rest) == _norm(options[idx])):
            return idx
    return None


def process_results(doc: dict[str, Any], results: list[Any]) -> dict[str, float]:
    """lm-eval's per-document scoring: `results` are the options' (loglikelihood, greedy) pairs (none without
    likelihood), then the reply."""
    *lls, reply = results
    picked = parse_answer(str(reply), doc["options"])
    out = {"acc_gen": float(picked == doc["gold"]), "unparsed": float(picked is None)}
    if lls:
        out["acc_ll"] = float(max(range(len(lls)), key=lambda i: lls[i][0]) == doc["gold"])
    return out


def _task_yaml(task: str, tag: str | None, data: Path, max_gen_toks: int, likelihood: bool) -> str:
    config = {
        "task": task, **({"tag": tag} if tag else {}),
        "dataset_path": "json", "dataset_name": None,
        "dataset_kwargs": {"data_files": {"test": str(data)}},
        "test_split": "test", "output_type": "multiple_choice",
        "doc_to_text": "prompt", "doc_to_choice": "choices", "doc_to_target": "gold", "target_delimiter": "",
        "generation_kwargs": {"until": [], "do_sample": False, "max_gen_toks": max_gen_toks},
        "metric_list": [{"metric": m, "aggregation": "mean", "higher_is_better": hib} for m, hib in METRICS
                        if likelihood or m != "acc_ll"],
        "metadata": {"version": 1, "likelihood": likelihood},
    }
    stem = SHIM.removesuffix(".py")
    return (f"class: !function {stem}.HeldoutTask\nprocess_results: !function {stem}.process_results\n"
            + yaml.safe_dump(config, sort_keys=True))


def _write_task(out: Path, task: str, tag: str | None, recs: list[SourceRecord], tok: Any, gen: tuple[int, bool]
                ) -> None:
    data = out / f"{task}.jsonl"
    with data.open("w") as fh:
        fh.writelines(json.dumps(document(r, tok), ensure_ascii=False, sort_keys=True) + "\n" for r in recs)
    (out / f"{task}.yaml").write_text(_task_yaml(task, tag, data, *gen))


def render(out: Path, name: str, parts: dict[str, list[SourceRecord]], tok: Any, max_gen_toks: int | None,
           group: bool, likelihood: bool = True) -> dict[str, list[float]]:
    """Write lm-eval task `name` asking `parts` (subtask -> records) in the trained format into `out`.

    With `group` (or several parts), `name` is a group of one task `<name>_<part>` per part, pooled
    weighted by size; else the one part is task `name` itself. Without `likelihood` only the reply is asked
    (no acc_ll). Returns each part's per-document chance level (1 / number of options), in document order.
    """
    out.mkdir(parents=True, exist_ok=True)
    (out / SHIM).write_text("from faco.evaluation.heldout_task import HeldoutTask, process_results  # noqa: F401\n")
    gen = (max_gen_toks or DEFAULT_MAX_GEN_TOKS, likelihood)
    if not group and len(parts) == 1:
        recs = next(iter(parts.values()))
        _write_task(out, name, None, recs, tok, gen)
        return {"": [1 / len(r.choices) for r in recs]}
    for part, recs in parts.items():
        _write_task(out, f"{name}_{part}", f"{name}_tasks", recs, tok, gen)
    spec = {"group": name, "task": [f"{name}_tasks"],
            "aggregate_metric_list": [{"metric": m, "weight_by_size": True} for m, _ in METRICS
                                      if likelihood or m != "acc_ll"],
            "metadata": {"version": 1}}
    (out / f"{name}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return {part: [1 / len(r.choices) for r in recs] for part, recs in parts.items()}
