"""Evaluate: a model artifact -> per-benchmark scores and per-item samples, with lm-evaluation-harness.

Writes `scores.json` ({bench: {task, shots, limit, domain, metrics, score, stderr, n[, subtasks]}}, plus
`epochs: {N: {bench: score}}` with evaluate.per_epoch), `samples/<bench>.jsonl` (one {doc_id, metric,
value} line per item and metric; a group's subtasks also in `samples/<bench>/<subtask>.jsonl`; epoch
checkpoints other than the final model in `samples/epochs/<N>/`) and `probes.jsonl`. Results are cached
by the content digest of the weights, the task and its settings (`faco.evaluation.cache`): an unchanged
model is not loaded again, swapped weights are.

Benchmark `heldout` asks the ingest artifact's held-out questions in the training format
(`faco.evaluation.heldout`); the ingest artifact is found through the model's lineage or given.

`prefetch` writes a `benchmarks` artifact, every configured benchmark's datasets in an HF datasets
cache; `run(..., benchmarks=that)` reads them from there with the hub switched off, so evaluation
needs no network (the no-egress pods that run model-written code).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from faco import artifact_kinds, artifacts
from faco.config import Study
from faco.errors import ConfigError
from faco.evaluation import heldout, hf_cache, results, sandbox
from faco.evaluation.runner import (
    CHECKPOINTS,
    Checkpoint,
    Evaluator,
    dataset_ref,
    epoch_checkpoints,
    leaf_tasks,
    offline_env,
)
from faco.evaluation.suite import suite
from faco.evaluation.tasks import task_name
from faco.paths import TASKS_DIR
from faco.progress import log
from faco.records import write_json
from faco.training import preflight

PREFETCH_KIND = "benchmarks"
SAMPLES = "samples"
#: Model manifest meta an evaluation carries over: the grid's ratio, recovery's start_ratio, the base row, the
#: model's role (faco.roles), the seed, the kind of false chain (corrupt.kinds).
CARRIED_META = ("ratio", "tag", "start_ratio", "base", "role", "seed", "kind")


def default_probes() -> list[str]:
    """The case-study questions shipped in `tasks/probes.yaml`."""
    return list(yaml.safe_load((TASKS_DIR / "probes.yaml").read_text())["probes"])


def prefetch(study: Study, out: Path) -> Path:
    """Materialise the datasets of every configured benchmark in an HF datasets cache artifact.

    The tasks are built with lm-eval's own TaskManager and `get_task_dict`, set up exactly as `run`
    sets them up, so the same dataset_path/name/revision are fetched (from the hub with
    `evaluate.offline: false`, from the mirror's JSON for twins). Every suite task scores with its
    own code (faco's SQuAD v1.1 task, not upstream squadv2's hub metric), so nothing else is
    fetched. The artifact holds `hf_datasets/` (prepared Arrow files; raw downloads and locks
    dropped); its manifest meta lists the tasks and datasets.
    """
    cfg = study.evaluate
    meta: dict[str, Any] = {"offline": cfg.offline}
    with artifacts.artifact_dir(out, PREFETCH_KIND, [], study.section_hash("evaluate"), meta) as tmp, \
            tempfile.TemporaryDirectory(prefix="faco-tasks-") as tasks_dir, \
            hf_cache.use_cache(tmp, offline=cfg.offline):
        from lm_eval.tasks import get_task_dict

        evaluator = Evaluator(study, Path(tasks_dir))
        names = evaluator.task_names(with_heldout=False)
        log(f"prefetch: building {', '.join(names)} ({'offline twins' if cfg.offline else 'hub'})")
        leaves = leaf_tasks(get_task_dict(names, evaluator.manager()))
        hf_cache.prune(tmp)
        meta.update(tasks=names, datasets=[dataset_ref(n, t, evaluator.data) for n, t in sorted(leaves.items())])
        log(f"prefetch: {len(leaves)} tasks -> {out}")
    return out


@contextmanager
def _prefetched(study: Study, benchmarks: Path) -> Iterator[None]:
    """Read benchmark data only from a `prefetch` artifact (a private working copy), offline."""
    meta = artifacts.require(benchmarks, PREFETCH_KIND)["meta"]
    cfg = study.evaluate
    names = [task_name(suite()[s.name], cfg.offline) for s in cfg.benchmarks if s.name != heldout.BENCHMARK]
    missing = [n for n in names if n not in meta.get("tasks", [])]
    if missing:
        raise ConfigError(
            f"{benchmarks}: the prefetched benchmarks lack {', '.join(missing)}; prefetch with this "
            "config (`faco benchmarks fetch`)"
        )
    log(f"evaluate: benchmark data from {benchmarks} (hub offline)")
    with tempfile.TemporaryDirectory(prefix="faco-hf-cache-") as work, \
            hf_cache.use_cache(hf_cache.working_copy(benchmarks, Path(work) / "cache"), offline=True):
        yield


def _write_samples(root: Path, samples: dict[str, dict[str, results.Rows]]) -> None:
    for bench, rows in samples.items():
        results.write_samples(root, bench, rows)


def _epochs(model_dir: Path, final: Checkpoint, snapshots: Path | None) -> dict[int, Checkpoint]:
    """The epoch checkpoints to score: the model's `checkpoints/epoch_N/`, or those of a `snapshots`
    artifact plus the model itself as its `final_epoch`."""
    if snapshots is None:
        return epoch_checkpoints(model_dir)
    final_epoch = artifacts.require(snapshots, artifact_kinds.SNAPSHOTS)["meta"].get("final_epoch")
    found = epoch_checkpoints(snapshots)
    return dict(sorted({**found, final_epoch: final}.items())) if final_epoch else found


def run(study: Study, model_dir: Path, out: Path, benchmarks: Path | None = None,
        heldout_from: Path | None = None, snapshots: Path | None = None) -> Path:
    """Score the model artifact (and, with per_epoch, each epoch checkpoint) on every configured benchmark.

    `benchmarks`: a `prefetch` artifact to read every dataset from, with the hub switched off.
    `heldout_from`: the ingest artifact whose held-out share benchmark `heldout` asks (default: the
    one in the model's lineage); it becomes a parent of the evaluation. `snapshots`: the model's
    epoch snapshots as their own artifact (`train.run(..., snapshots=)`), a parent when given.
    """
    model_manifest = artifacts.require(model_dir, artifact_kinds.MODEL)
    cfg = study.evaluate
    needs_code = [s.name for s in cfg.benchmarks if suite()[s.name].code_execution]
    if needs_code and not cfg.allow_code_execution:
        raise ConfigError(
            f"evaluate.benchmarks: {', '.join(needs_code)} run model-written code; set "
            "evaluate.allow_code_execution: true to run it in faco's sandbox (docs/evaluation.md)"
        )
    if needs_code:
        sandbox.check()  # where this machine cannot contain the code: refuse now, before the model loads
    preflight.require_weights(model_dir, "--model")
    asks_heldout = any(s.name == heldout.BENCHMARK for s in cfg.benchmarks)
    ingest = heldout.ingest_for(model_dir, heldout_from) if asks_heldout else None
    final = Checkpoint.of(model_dir / "model")
    epochs = _epochs(model_dir, final, snapshots) if cfg.per_epoch else {}
    m = model_manifest["meta"]
    if cfg.per_epoch and not epochs and not m.get("base"):
        log(f"evaluate: per_epoch is set but {model_dir} has no {CHECKPOINTS}/epoch_N/")
    meta: dict[str, Any] = {k: m[k] for k in CARRIED_META if k in m}
    meta.setdefault("seed", study.train.seed)
    tag = model_dir.name  # the model's name in logs: cr_0.5, recovery_from_cr_1.0, base
    parents = [model_dir, *([snapshots] if snapshots else []), *([ingest] if ingest else []),
               *([benchmarks] if benchmarks else [])]
    with offline_env(cfg.offline) if benchmarks is None else _prefetched(study, benchmarks), \
            artifacts.artifact_dir(out, artifact_kinds.EVAL, parents, study.section_hash("evaluate"), meta) as tmp, \
            tempfile.TemporaryDirectory(prefix="faco-tasks-") as tasks_dir:
        evaluator = Evaluator(study, Path(tasks_dir), ingest, final.path)
        scores, samples = evaluator.score(final, tag)
        _write_samples(tmp / SAMPLES, samples)
        if epochs:
            per_epoch: dict[str, Any] = {}
            for n, ck in epochs.items():
                if ck.digest == final.digest:
                    per_epoch[str(n)] = {b: e["score"] for b, e in scores.items()}
                    continue
                epoch_scores, epoch_samples = evaluator.score(ck, f"{tag} epoch {n}")
                per_epoch[str(n)] = {b: e["score"] for b, e in epoch_scores.items()}
                _write_samples(tmp / SAMPLES / "epochs" / str(n), epoch_samples)
                ck._lm = None
            scores["epochs"] = per_epoch
        probes = evaluator.probes(final, cfg.probes if cfg.probes is not None else default_probes())
        write_json(tmp / "scores.json", scores)
        with (tmp / "probes.jsonl").open("w") as fh:
            fh.writelines(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n" for row in probes)
        meta["scores"] = {k: v["score"] for k, v in scores.items() if k != "epochs"}
    return out
