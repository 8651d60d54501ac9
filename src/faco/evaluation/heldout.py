"""Benchmark `heldout`: the ingest artifact's held-out questions, asked exactly as training asks them.

Each multiple-choice record of `heldout.jsonl` becomes a document whose prompt is the training
prompt (`format_question` under the model's chat template, as `training.data.prompt_text` builds
it) and is scored two ways by one lm-eval task per source (grouped as `faco_heldout`, pooled
weighted by size):

- `acc_ll`: the option whose training answer line (`Answer: <option>`) is most likely;
- `acc_gen`: the option named by the last `Answer:` line of the greedy reply (the score);
  a reply naming no option is wrong and counted in `unparsed`.

The task YAMLs and data files are written into the evaluation's temporary include path, so the
benchmark runs through the same harness, cache and report as every other one.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import yaml

from faco import artifact_kinds, artifacts
from faco.errors import ConfigError
from faco.generation.prompts import format_question
from faco.records import SourceRecord, read_jsonl

BENCHMARK = "heldout"
GROUP = "faco_heldout"
FILE = "heldout.jsonl"
DEFAULT_MAX_GEN_TOKS = 256
_SHIM = "faco_heldout_task.py"
_METRICS = (("acc_gen", True), ("acc_ll", True), ("unparsed", False))
_ANSWER_LINE = re.compile(r"(?im)^[ \t]*answer[ \t]*:[ \t]*(.*?)[ \t]*$")
_LETTER = re.compile(r"\(?([A-Z])\)?(?:[.:)]?\s+(.*))?")


def _parents(path: Path) -> list[Path]:
    """An artifact's parents: the recorded relative path where it holds the recorded manifest, else the path."""
    found = []
    for p in artifacts.read_manifest(path).get("parents", []):
        options = [path / p["relative_path"]] if p.get("relative_path") else []
        options.append(Path(p["path"]))
        intact = [o for o in options if (o / artifacts.MANIFEST).is_file()
                  and artifacts.manifest_hash(o) == p.get("manifest_sha256")]
        existing = [o for o in options if (o / artifacts.MANIFEST).is_file()]
        if intact or existing:
            found.append((intact or existing)[0])
    return found


def find_ingest(model_dir: Path) -> Path | None:
    """The ingest artifact in a model's lineage (model -> splits -> pairs -> ingest), or None."""
    todo, seen = [model_dir], set()
    while todo:
        path = todo.pop(0)
        if path.resolve() in seen:
            continue
        seen.add(path.resolve())
        if artifacts.read_manifest(path).get("kind") == artifact_kinds.SOURCES:
            return path
        todo.extend(_parents(path))
    return None


def ingest_for(model_dir: Path, explicit: Path | None) -> Path:
    """The ingest artifact whose held-out share to ask: `explicit`, or the one in the model's lineage."""
    ingest = explicit if explicit is not None else find_ingest(model_dir)
    if ingest is None:
        raise ConfigError(
            f"{model_dir}: benchmark 'heldout' needs the ingest artifact and none is in the model's lineage; "
            "pass it with --heldout INGEST_DIR"
        )
    artifacts.require(ingest, artifact_kinds.SOURCES)
    if not (ingest / FILE).is_file():
        raise ConfigError(f"{ingest}: no {FILE} (ingest with ingest.heldout set to hold out a share of every source)")
    return ingest


def questions(ingest: Path) -> dict[str, list[SourceRecord]]:
    """The held-out multiple-choice records by source, in file order (code records are not asked)."""
    by_source: dict[str, list[SourceRecord]] = defaultdict(list)
    for rec in read_jsonl(ingest / FILE, SourceRecord):
        if rec.kind == "mc" and rec.answer_index is not None:
            by_source[rec.source].append(rec)
    if not by_source:
        raise ConfigError(f"{ingest / FILE}: no multiple-choice records with an answer_index to ask")
    return dict(sorted(by_source.items()))


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
    """lm-eval's per-document scoring: `results` are the options' (loglikelihood, greedy) pairs, then the reply."""
    *lls, reply = results
    best = max(range(len(lls)), key=lambda i: lls[i][0])
    picked = parse_answer(str(reply), doc["options"])
    return {"acc_gen": float(picked == doc["gold"]), "acc_ll": float(best == doc["gold"]),
            "unparsed": float(picked is None)}


def _task_yaml(source: str, data: Path, max_gen_toks: int) -> str:
    config = {
        "task": f"{GROUP}_{source}", "tag": f"{GROUP}_tasks",
        "dataset_path": "json", "dataset_name": None,
        "dataset_kwargs": {"data_files": {"test": str(data)}},
        "test_split": "test", "output_type": "multiple_choice",
        "doc_to_text": "prompt", "doc_to_choice": "choices", "doc_to_target": "gold", "target_delimiter": "",
        "generation_kwargs": {"until": [], "do_sample": False, "max_gen_toks": max_gen_toks},
        "metric_list": [{"metric": m, "aggregation": "mean", "higher_is_better": hib} for m, hib in _METRICS],
        "metadata": {"version": 1},
    }
    stem = _SHIM.removesuffix(".py")
    return (f"class: !function {stem}.HeldoutTask\nprocess_results: !function {stem}.process_results\n"
            + yaml.safe_dump(config, sort_keys=True))


def render(ingest: Path, tok: Any, out: Path, max_gen_toks: int | None) -> dict[str, list[float]]:
    """Write the `faco_heldout` group, one task and data file per source, into the include path `out`.

    Returns each source's per-document chance level (1 / number of options), in document order.
    """
    out.mkdir(parents=True, exist_ok=True)
    (out / _SHIM).write_text("from faco.evaluation.heldout_task import HeldoutTask, process_results  # noqa: F401\n")
    chance: dict[str, list[float]] = {}
    for source, recs in questions(ingest).items():
        data = out / f"{GROUP}_{source}.jsonl"
        with data.open("w") as fh:
            fh.writelines(json.dumps(document(r, tok), ensure_ascii=False, sort_keys=True) + "\n" for r in recs)
        (out / f"{GROUP}_{source}.yaml").write_text(_task_yaml(source, data, max_gen_toks or DEFAULT_MAX_GEN_TOKS))
        chance[source] = [1 / len(r.choices) for r in recs]
    group = {"group": GROUP, "task": [f"{GROUP}_tasks"],
             "aggregate_metric_list": [{"metric": m, "weight_by_size": True} for m, _ in _METRICS],
             "metadata": {"version": 1}}
    (out / f"{GROUP}.yaml").write_text(yaml.safe_dump(group, sort_keys=False))
    return chance
