"""lm-eval results -> faco's scores.json entries and per-item samples.

An entry: {task, shots, limit, domain, metrics: {m: {value, stderr}}, score, stderr, n[, subtasks]}
(stderr is lm-eval's). Samples: one {"doc_id", "metric", "value"} row per item and metric, from
lm-eval's `log_samples`; a group's rows per subtask, and pooled with doc_id "<subtask>/<doc_id>". An item
the model answered by generation also has its raw `reply` on the row of the benchmark's first metric.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from faco.evaluation.suite import Benchmark

Rows = list[dict[str, Any]]


def _metric(results: dict[str, Any], metric: str) -> tuple[float | None, float | None]:
    for key, value in results.items():
        name, _, _filter = key.partition(",")
        if name == metric and isinstance(value, (int, float)):
            stderr = results.get(f"{metric}_stderr,{_filter}")
            return float(value), float(stderr) if isinstance(stderr, (int, float)) else None
    return None, None


def metrics(results: dict[str, Any], names: list[str]) -> dict[str, dict[str, float | None]]:
    """{metric: {value, stderr}} of one task's lm-eval results."""
    return {m: dict(zip(("value", "stderr"), _metric(results, m), strict=True)) for m in names}


def subtask_name(leaf: str, task: str) -> str:
    """A group member's name in faco's output: `faco_mmlu_anatomy` of `faco_mmlu` -> `anatomy`."""
    return leaf.removeprefix(f"{task}_")


def entry(res: dict[str, Any], task: str, bench: Benchmark, shots: int, limit: int | None) -> dict[str, Any]:
    """One scores.json entry; groups (MMLU, heldout) get `subtasks: {name: {metrics, n}}` from their leaves."""
    counts = {k: v.get("effective") for k, v in res.get("n-samples", {}).items()}
    out: dict[str, Any] = {"task": task, "shots": shots, "limit": limit, "domain": bench.domain,
                           "metrics": metrics(res["results"][task], bench.metrics)}
    out["score"] = out["metrics"][bench.metrics[0]]["value"]
    out["stderr"] = out["metrics"][bench.metrics[0]]["stderr"]
    leaves = sorted(k for k in counts if k != task)
    if leaves:
        out["subtasks"] = {
            subtask_name(k, task): {"metrics": metrics(res["results"][k], bench.metrics), "n": counts[k]}
            for k in leaves
        }
        out["n"] = sum(n or 0 for n in counts.values())
    else:
        out["n"] = counts.get(task)
    return out


def _reply(sample: dict[str, Any]) -> str | None:
    """The model's raw reply to a logged item's last generation request (before any filter); None when the
    item was scored by log-likelihood alone."""
    for resp in reversed(sample.get("resps") or []):
        first = resp[0] if isinstance(resp, list) and resp else resp
        if isinstance(first, str):
            return first
    return None


def _rows(logged: list[dict[str, Any]], names: list[str]) -> Rows:
    """Numeric per-item metric values, one row per (doc_id, metric); the first filter's value wins. An item
    answered by generation keeps the model's raw `reply` on its first metric's row (to audit the scoring)."""
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for sample in logged:
        for m in names:
            value = sample.get(m)
            key = (str(sample["doc_id"]), m)
            if isinstance(value, (bool, int, float)) and key not in seen:
                row = seen[key] = {"doc_id": sample["doc_id"], "metric": m, "value": float(value)}
                if m == names[0] and (reply := _reply(sample)) is not None:
                    row["reply"] = reply
    return sorted(seen.values(), key=lambda r: (str(type(r["doc_id"])), r["doc_id"], r["metric"]))


def samples(res: dict[str, Any], task: str, bench: Benchmark) -> dict[str, Rows]:
    """{"": rows} for a single task; for a group {"": pooled rows, subtask: rows, ...}."""
    logged: dict[str, list[dict[str, Any]]] = res.get("samples") or {}
    if set(logged) <= {task}:
        return {"": _rows(logged.get(task, []), bench.metrics)}
    out: dict[str, Rows] = {}
    pooled: Rows = []
    for leaf in sorted(logged):
        name = subtask_name(leaf, task)
        out[name] = _rows(logged[leaf], bench.metrics)
        pooled.extend({**r, "doc_id": f"{name}/{r['doc_id']}"} for r in out[name])
    out[""] = pooled
    return out


def write_samples(root: Path, bench: str, rows: dict[str, Rows]) -> None:
    """`root/<bench>.jsonl` (all items) and, for a group, `root/<bench>/<subtask>.jsonl`."""
    root.mkdir(parents=True, exist_ok=True)
    for sub, items in sorted(rows.items()):
        path = root / f"{bench}.jsonl" if sub == "" else root / bench / f"{sub}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w") as fh:
            fh.writelines(json.dumps(r, sort_keys=True) + "\n" for r in items)
