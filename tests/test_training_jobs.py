"""Multi-node training jobs: objects valid against the Kubeflow CRD schemas, conditions -> outcome."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from faco.k8s import jobs
from faco.k8s.launcher import train_args
from faco.k8s.settings import ClusterSettings, MultiNode
from faco.k8s.status import new_condition_lines, outcome

SCHEMAS = Path(__file__).parent / "data" / "k8s-schemas"


def _closed(schema: Any) -> Any:
    """The schema with unknown fields forbidden where the API server would prune them."""
    if isinstance(schema, dict):
        out = {k: _closed(v) for k, v in schema.items()}
        if "properties" in out and "additionalProperties" not in out \
                and not out.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_closed(v) for v in schema]
    return schema


def crd_schema(filename: str, version: str) -> dict[str, Any]:
    crd = yaml.safe_load((SCHEMAS / filename).read_text())
    (v,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    return _closed(v["schema"]["openAPIV3Schema"])


PYTORCHJOB_SCHEMA = crd_schema("kubeflow.org_pytorchjobs.yaml", "v1")
TRAINJOB_SCHEMA = crd_schema("trainer.kubeflow.org_trainjobs.yaml", "v1alpha1")


def settings(nodes: int, job_api: str) -> ClusterSettings:
    return ClusterSettings(multi_node=MultiNode(nodes=nodes, job_api=job_api, namespace="faco"))  # type: ignore[arg-type]


def request() -> jobs.TrainJobRequest:
    work = Path("/mnt/checkpoints/jobs/x")
    args = train_args(work / "inputs/config.yaml", work / "inputs/splits", 0.25, work / "model", None,
                      work / "ckpt")
    return jobs.TrainJobRequest("faco-3f46aa8b-cr-025-a1b2c3", "faco", "ghcr.io/faco/faco-train:0.1.0", args)


@pytest.mark.parametrize("nodes", [1, 4])
def test_pytorchjob_validates_against_crd(nodes: int) -> None:
    obj = jobs.build(request(), settings(nodes, "PyTorchJob"))
    jsonschema.validate(obj, PYTORCHJOB_SCHEMA)
    replicas = obj["spec"]["pytorchReplicaSpecs"]
    assert replicas["Master"]["replicas"] == 1
    assert replicas.get("Worker", {}).get("replicas", 0) == nodes - 1
    container = replicas["Master"]["template"]["spec"]["containers"][0]
    assert container["command"][:5] == ["torchrun", f"--nnodes={nodes}", "--nproc-per-node=8", "-m",
                                        "faco.training.launch"]
    assert container["command"][-2:] == ["--work-dir", "/mnt/checkpoints/jobs/x/ckpt"]
    assert container["resources"]["limits"] == {"nvidia.com/gpu": "8"}


@pytest.mark.parametrize("nodes", [1, 4])
def test_trainjob_validates_against_crd(nodes: int) -> None:
    obj = jobs.build(request(), settings(nodes, "TrainJob"))
    jsonschema.validate(obj, TRAINJOB_SCHEMA)
    assert obj["spec"]["trainer"]["numNodes"] == nodes
    assert obj["spec"]["trainer"]["numProcPerNode"] == 8
    override = obj["spec"]["podSpecOverrides"][0]
    assert {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "64Gi"}} in override["volumes"]


def test_schema_check_catches_a_misplaced_field() -> None:
    obj = copy.deepcopy(jobs.build(request(), settings(2, "TrainJob")))
    obj["spec"]["trainer"]["gpus"] = 8
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(obj, TRAINJOB_SCHEMA)


def test_secrets_are_referenced_by_name_only() -> None:
    master = jobs.build(request(), settings(2, "PyTorchJob"))["spec"]["pytorchReplicaSpecs"]["Master"]
    env = master["template"]["spec"]["containers"][0]["env"]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in env if "valueFrom" in e}
    assert refs["HF_TOKEN"] == {"name": "faco-hf", "key": "token", "optional": True}
    assert refs["AWS_SECRET_ACCESS_KEY"]["name"] == "faco-s3"
    assert all("value" not in e for e in env if e["name"] in refs)


def test_job_names_are_dns_labels_and_unique_per_task() -> None:
    a = jobs.job_name("3f46aa8b16383827" * 4, "cr_012p5", "task-1")
    b = jobs.job_name("3f46aa8b16383827" * 4, "cr_012p5", "task-2")
    assert a != b
    for name in (a, b):
        assert re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", name) and len(name) <= 45


def job(job_api: str, *conds: tuple[str, str, str]) -> dict[str, Any]:
    return {"kind": job_api, "status": {"conditions": [
        {"type": t, "status": s, "reason": r, "message": f"{t} {r}",
         "lastTransitionTime": f"2026-01-01T00:0{i}:00Z"}
        for i, (t, s, r) in enumerate(conds)]}}


def test_pytorchjob_conditions_map_to_outcomes() -> None:
    assert not outcome("PyTorchJob", {"status": {}}).done
    created, running = ("Created", "True", "PyTorchJobCreated"), ("Running", "True", "PyTorchJobRunning")
    assert not outcome("PyTorchJob", job("PyTorchJob", created, running)).done
    ok = job("PyTorchJob", created, ("Running", "False", "r"), ("Succeeded", "True", "PyTorchJobSucceeded"))
    assert outcome("PyTorchJob", ok).succeeded
    bad = job("PyTorchJob", ("Running", "False", "r"), ("Failed", "True", "PyTorchJobFailed"))
    result = outcome("PyTorchJob", bad)
    assert result.done and not result.succeeded
    assert result.reason == "PyTorchJobFailed" and result.message == "Failed PyTorchJobFailed"


def test_trainjob_conditions_map_to_outcomes() -> None:
    assert outcome("TrainJob", job("TrainJob", ("Complete", "True", "JobsCompleted"))).succeeded
    assert not outcome("TrainJob", job("TrainJob", ("Suspended", "True", "Suspended"))).done
    failed = outcome("TrainJob", job("TrainJob", ("Failed", "True", "TrainingRuntimeNotSupported")))
    assert failed.done and not failed.succeeded and failed.reason == "TrainingRuntimeNotSupported"
    # a PyTorchJob's success type means nothing on a TrainJob
    assert not outcome("TrainJob", job("TrainJob", ("Succeeded", "True", "x"))).done


def test_condition_lines_stream_only_changes() -> None:
    seen: set[tuple[str, ...]] = set()
    first = job("PyTorchJob", ("Created", "True", "PyTorchJobCreated"))
    assert new_condition_lines(seen, first["status"]["conditions"]) == [
        "Created=True (PyTorchJobCreated): Created PyTorchJobCreated"]
    assert new_condition_lines(seen, first["status"]["conditions"]) == []
    later = job("PyTorchJob", ("Created", "True", "PyTorchJobCreated"),
                ("Running", "True", "PyTorchJobRunning"))
    assert [line.split(" ")[0] for line in new_condition_lines(seen, later["status"]["conditions"])] == [
        "Running=True"]
