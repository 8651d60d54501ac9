"""Evaluate: a model artifact -> per-benchmark scores with lm-evaluation-harness."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from faco import artifacts
from faco.config import Study
from faco.evaluation.suite import suite
from faco.evaluation.tasks import render_offline, task_name
from faco.paths import data_dir
from faco.progress import log, track
from faco.records import write_json
from faco.stages import train

KIND = "eval"


def _model(model_dir: Path, batch_size: int | str, backend: str) -> Any:
    import torch

    if backend == "vllm":
        from lm_eval.models.vllm_causallms import VLLM

        return VLLM(pretrained=str(model_dir), batch_size=batch_size)
    from lm_eval.models.huggingface import HFLM

    cuda = torch.cuda.is_available()
    return HFLM(
        pretrained=str(model_dir), device="cuda" if cuda else "cpu",
        dtype="bfloat16" if cuda else "float32", batch_size=batch_size,
    )


def _metric(results: dict[str, Any], metric: str) -> tuple[float | None, float | None]:
    for key, value in results.items():
        name, _, _filter = key.partition(",")
        if name == metric and isinstance(value, (int, float)):
            stderr = results.get(f"{metric}_stderr,{_filter}")
            return float(value), float(stderr) if isinstance(stderr, (int, float)) else None
    return None, None


def run(study: Study, model_dir: Path, out: Path) -> Path:
    """Score the model artifact on every configured benchmark."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    model_manifest = artifacts.require(model_dir, train.KIND)
    cfg = study.evaluate
    if cfg.offline:
        os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    benches = [suite()[b.name] for b in cfg.benchmarks]
    m = model_manifest["meta"]
    meta: dict[str, Any] = {k: m[k] for k in ("ratio", "tag", "start_ratio") if k in m}
    with artifacts.artifact_dir(out, KIND, [model_dir], study.section_hash("evaluate"), meta) as tmp:
        with tempfile.TemporaryDirectory(prefix="faco-tasks-") as tasks_dir:
            if cfg.offline:
                render_offline(benches, data_dir(study.ingest.data_dir), Path(tasks_dir))
                manager = TaskManager(include_path=tasks_dir, include_defaults=False)
            else:
                manager = TaskManager()
            lm = _model(model_dir / "model", cfg.batch_size, cfg.backend)
            scores: dict[str, Any] = {}
            for spec, bench in track(list(zip(cfg.benchmarks, benches, strict=True)), "evaluate"):
                task = task_name(bench, cfg.offline)
                shots = bench.shots if spec.shots is None else spec.shots
                res = lm_eval.simple_evaluate(
                    model=lm, tasks=[task], num_fewshot=shots, limit=spec.limit, task_manager=manager,
                    random_seed=cfg.seed, numpy_random_seed=cfg.seed, torch_random_seed=cfg.seed,
                    fewshot_random_seed=cfg.seed, log_samples=False,
                )
                assert res is not None
                task_results = res["results"][task]
                entry: dict[str, Any] = {"task": task, "shots": shots, "limit": spec.limit,
                                         "domain": bench.domain, "metrics": {}}
                for metric in bench.metrics:
                    value, stderr = _metric(task_results, metric)
                    entry["metrics"][metric] = {"value": value, "stderr": stderr}
                entry["score"] = entry["metrics"][bench.metrics[0]]["value"]
                entry["n"] = res.get("n-samples", {}).get(task, {}).get("effective")
                scores[bench.name] = entry
                log(f"evaluate {meta.get('tag', '')} {bench.name}: {bench.metrics[0]} = {entry['score']}")
        write_json(tmp / "scores.json", scores)
        meta["scores"] = {k: v["score"] for k, v in scores.items()}
    return out
