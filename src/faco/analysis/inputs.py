"""What the analysis reads from artifacts: evaluations by model role, training logs, probe answers.

An eval artifact's `scores.json` holds every benchmark's score (lm-eval's stderr per metric,
per-epoch scores, subtasks) and `samples/<benchmark>.jsonl` its per-item results; the manifest's
meta says which model it scored (`faco.roles`). A model artifact's `loss.jsonl` holds the step
losses, `sample_loss.jsonl` the loss of every training example per epoch.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from faco import artifact_kinds, artifacts, roles
from faco.analysis.schema import ModelRef, Probe
from faco.evaluation.suite import Benchmark, suite
from faco.roles import Role


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The rows of a JSON Lines file (none when it is absent)."""
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def model_ref(meta: dict[str, Any]) -> ModelRef:
    """The model a model, eval or judged manifest's meta describes."""
    role = roles.of(meta)
    ratio = None if role is Role.BASE else float(meta["start_ratio"] if role is Role.RECOVERY else meta["ratio"])
    seed = meta.get("seed")
    return ModelRef(role=role, ratio=ratio, seed=None if seed is None else int(seed))


@dataclass
class Evaluated:
    """One eval artifact: which model it scored and its scores."""

    path: Path
    meta: dict[str, Any]
    scores: dict[str, Any]
    _items: dict[tuple[str, str], dict[str, float]] = field(default_factory=dict, repr=False)

    @property
    def benchmarks(self) -> dict[str, Any]:
        return {k: v for k, v in self.scores.items() if k != "epochs"}

    @property
    def seed(self) -> int | None:
        s = self.meta.get("seed")
        return None if s is None else int(s)

    def items(self, name: str, metric: str) -> dict[str, float]:
        """doc_id -> per-item value of `metric` from `samples/<name>.jsonl` (empty when absent)."""
        key = (name, metric)
        if key not in self._items:
            self._items[key] = {str(row["doc_id"]): float(row["value"])
                                for row in read_jsonl(self.path / "samples" / f"{name}.jsonl")
                                if row.get("metric") == metric and row.get("value") is not None}
        return self._items[key]


@dataclass
class Evals:
    """The study's evaluations by role: grid (ratio -> one per seed), base, recovery (from ratio -> seeds)."""

    grid: dict[float, list[Evaluated]]
    base: Evaluated | None
    recovery: dict[float, list[Evaluated]]

    @cached_property
    def ratios(self) -> list[float]:
        return sorted(self.grid)

    @cached_property
    def seeds(self) -> list[int]:
        return sorted({e.seed for es in self.grid.values() for e in es if e.seed is not None})


def evals(paths: Sequence[Path]) -> Evals:
    """The eval artifacts at `paths`, by the role of the model each scored."""
    grid: dict[float, list[Evaluated]] = defaultdict(list)
    rec: dict[float, list[Evaluated]] = defaultdict(list)
    base = None
    for path in paths:
        meta = artifacts.require(path, artifact_kinds.EVAL)["meta"]
        ev = Evaluated(path, meta, json.loads((path / "scores.json").read_text()))
        role = roles.of(meta)
        if role is Role.BASE:
            base = ev
        elif role is Role.RECOVERY:
            rec[float(meta["start_ratio"])].append(ev)
        else:
            grid[float(meta["ratio"])].append(ev)
    return Evals(dict(sorted(grid.items())), base, dict(rec))


def mean(values: Sequence[float | None]) -> float | None:
    """The mean, None when any value is missing (or there are none)."""
    v = [x for x in values if x is not None]
    return sum(v) / len(v) if v and len(v) == len(values) else None


def spec(name: str) -> Benchmark | None:
    """The suite entry of a benchmark, or of the group of a `group/subtask` row."""
    return suite().get(name.partition("/")[0])


def primary(name: str) -> str:
    """A benchmark's primary metric: the first of its suite entry's."""
    s = spec(name)
    return s.metrics[0] if s else "acc"


def lookup(e: Evaluated, name: str) -> dict[str, Any]:
    """The scores.json entry of a benchmark, or of a group's subtask (`heldout/arc`) with its score."""
    bench, _, sub = name.partition("/")
    entry = e.benchmarks.get(bench) or {}
    if not sub:
        return dict(entry)
    leaf = (entry.get("subtasks") or {}).get(sub) or {}
    return {**leaf, "score": ((leaf.get("metrics") or {}).get(primary(name)) or {}).get("value")}


def score(evs: Sequence[Evaluated], bench: str) -> float | None:
    """Mean over seeds of a benchmark's score (None when a seed lacks it)."""
    return mean([lookup(e, bench).get("score") for e in evs])


def stderr(evs: Sequence[Evaluated], bench: str, metric: str) -> float | None:
    """lm-eval's stderr of the primary metric (mean over seeds)."""
    return mean([((lookup(e, bench).get("metrics") or {}).get(metric) or {}).get("stderr") for e in evs])


def items(evs: Sequence[Evaluated], name: str, metric: str) -> dict[str, float]:
    """Per-item values averaged over seeds, on the items every seed has."""
    per = [e.items(name, metric) for e in evs]
    common = set.intersection(*(set(p) for p in per)) if per else set()
    return {k: sum(p[k] for p in per) / len(per) for k in common}


@dataclass
class TrainingLog:
    """The loss logs of one grid model: step losses and per-example losses (`sample_loss.jsonl` rows)."""

    ratio: float
    steps: list[tuple[int, float]]
    samples: list[dict[str, Any]]


def training_logs(models: Sequence[Path]) -> list[TrainingLog]:
    """The logs of the first model artifact of every grid ratio (not the base or a recovery model); a
    `train_logs` artifact (a pipeline's: the logs without the weights) serves as its model."""
    logs: dict[float, TrainingLog] = {}
    for path in models:
        meta = artifacts.require(path, artifact_kinds.MODEL, artifact_kinds.TRAIN_LOGS)["meta"]
        ratio = float(meta.get("ratio", 0.0))
        if roles.of(meta) is not Role.GRID or ratio in logs:
            continue
        logs[ratio] = TrainingLog(ratio, [(e["step"], e["loss"]) for e in read_jsonl(path / "loss.jsonl")],
                                  read_jsonl(path / "sample_loss.jsonl"))
    return list(logs.values())


def probes(paths: Sequence[Path]) -> list[Probe]:
    """Every model's greedy answers to the probe questions (Table 2 case study)."""
    return [Probe(model=model_ref(artifacts.read_manifest(path)["meta"]), set=rec.get("set", "custom"),
                  question=rec["question"], answer=rec["answer"])
            for path in paths for rec in read_jsonl(path / "probes.jsonl")]
