"""Run the train stage as a multi-node Kubeflow training job and wait for it.

The launcher stages the config and the split artifact on the checkpoint PVC (mounted in the
launcher pod and in every training pod), creates the job, streams its conditions, and copies
the model back into the pipeline's output artifact. A failed job fails the caller with its reason.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from faco.errors import FacoError
from faco.k8s import jobs
from faco.k8s.settings import ClusterSettings
from faco.k8s.status import Outcome, conditions, new_condition_lines, outcome
from faco.progress import log
from faco.stages.train import launch_args

NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class TrainingJobFailed(FacoError):
    """The training job ended in a Failed condition (or did not end in time)."""


def train_args(config: Path, splits: Path, ratio: float, out: Path, start: Path | None,
               work_dir: Path, snapshots: Path | None = None) -> list[str]:
    """Arguments of `python -m faco.stages.train` for one split; checkpoints in `work_dir` make it resumable."""
    return launch_args(config, splits, ratio, out, start, work_dir, snapshots)


def wait(api: Any, job_api: str, namespace: str, name: str, *, poll_seconds: float, timeout_s: float,
         echo: Callable[[str], None] = log, sleep: Callable[[float], None] = time.sleep) -> Outcome:
    """Poll a job through a `kubernetes.client.CustomObjectsApi` until it ends; echo new conditions."""
    group, version, plural, _ = jobs.api_of(job_api)
    seen: set[tuple[str, ...]] = set()
    deadline = time.monotonic() + timeout_s
    while True:
        obj = api.get_namespaced_custom_object(group, version, namespace, plural, name)
        for line in new_condition_lines(seen, conditions(obj)):
            echo(f"{job_api} {name}: {line}")
        result = outcome(job_api, obj)
        if result.done:
            return result
        if time.monotonic() > deadline:
            return Outcome(True, False, "Timeout", f"not finished after {timeout_s:.0f} s")
        sleep(poll_seconds)


def namespace_of(settings: ClusterSettings) -> str:
    if settings.multi_node.namespace:
        return settings.multi_node.namespace
    if NAMESPACE_FILE.is_file():
        return NAMESPACE_FILE.read_text().strip()
    raise FacoError("multi_node.namespace is not set and the launcher is not running in a pod")


def run_job(api: Any, settings: ClusterSettings, image: str, *, config_yaml: str, config_hash: str,
            ratio_tag: str, unique: str, splits: Path, ratio: float, out: Path,
            start: Path | None = None, snapshots: Path | None = None) -> Path:
    """Stage inputs on the PVC, run the job, wait, and copy the model artifact to `out` (and with
    `snapshots`, the epoch snapshots, written by the job as their own artifact, there)."""
    name = jobs.job_name(config_hash, ratio_tag, unique)
    work = Path(settings.checkpoint_mount) / "jobs" / name
    if (work / "inputs").exists():
        shutil.rmtree(work / "inputs")
    (work / "inputs").mkdir(parents=True)
    config = work / "inputs" / "config.yaml"
    config.write_text(config_yaml)
    staged_splits = Path(shutil.copytree(splits, work / "inputs" / "splits"))
    staged_start = Path(shutil.copytree(start, work / "inputs" / "start")) if start is not None else None
    model = work / "model"
    req = jobs.TrainJobRequest(name, namespace_of(settings), image,
                               train_args(config, staged_splits, ratio, model, staged_start, work / "ckpt",
                                          work / "snapshots" if snapshots is not None else None))
    obj = jobs.build(req, settings)
    group, version, plural, kind = jobs.api_of(settings.multi_node.job_api)
    log(f"creating {kind} {req.namespace}/{name}: "
        f"{settings.multi_node.nodes} nodes x {settings.gpus_per_node} GPUs")
    api.create_namespaced_custom_object(group, version, req.namespace, plural, obj)
    result = wait(api, settings.multi_node.job_api, req.namespace, name,
                  poll_seconds=settings.multi_node.poll_seconds,
                  timeout_s=settings.multi_node.timeout_hours * 3600)
    if not result.succeeded:
        raise TrainingJobFailed(f"{kind} {req.namespace}/{name} failed: {result.reason}: {result.message}")
    for src, dest in ((model, out), (work / "snapshots", snapshots)):
        if dest is not None:
            shutil.rmtree(dest, ignore_errors=True)
            shutil.copytree(src, dest)
    shutil.rmtree(work / "inputs")
    return out
