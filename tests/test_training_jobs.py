"""Multi-node training jobs: objects valid against the Kubeflow CRD schemas, conditions -> outcome."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from faco import images
from faco.k8s import jobs
from faco.k8s.launcher import train_args
from faco.k8s.settings import ClusterSettings, MultiNode
from faco.k8s.status import new_condition_lines, outcome

ROOT = Path(__file__).resolve().parents[1]
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
#: A namespaced TrainingRuntime has the ClusterTrainingRuntime's spec.
RUNTIME_SCHEMA = crd_schema("trainer.kubeflow.org_clustertrainingruntimes.yaml", "v1alpha1")


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
                                        "faco.stages.train"]
    assert container["command"][-2:] == ["--work-dir", "/mnt/checkpoints/jobs/x/ckpt"]
    assert container["resources"]["limits"] == {"cpu": "64", "memory": "900G", "nvidia.com/gpu": "8"}


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


# --- pod security -------------------------------------------------------------------------------

def assert_restricted(pod: dict[str, Any]) -> None:
    """The `restricted` Pod Security level, as the images' user, with a read-only root."""
    sc = pod["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc["runAsUser"] == sc["runAsGroup"] == sc["fsGroup"] == images.USER_ID == images.GROUP_ID
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    for c in pod["containers"]:
        csc = c["securityContext"]
        assert csc["allowPrivilegeEscalation"] is False and csc["privileged"] is False
        assert csc["capabilities"] == {"drop": ["ALL"]}
        assert csc["readOnlyRootFilesystem"] is True


def assert_writable_paths(volumes: list[dict[str, Any]], mounts: list[dict[str, Any]]) -> None:
    """/tmp and $HOME are emptyDirs (read-only root), /dev/shm a memory emptyDir for NCCL."""
    by_name = {v["name"]: v for v in volumes}
    at = {m["mountPath"]: by_name[m["name"]] for m in mounts}
    assert at["/dev/shm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "64Gi"}
    assert at["/tmp"]["emptyDir"] == {"sizeLimit": "100Gi"}
    assert at[images.HOME_DIR]["emptyDir"] == {"sizeLimit": "4Gi"}
    assert at["/mnt/checkpoints"]["persistentVolumeClaim"] == {"claimName": "faco-checkpoints"}


@pytest.mark.parametrize("nodes", [1, 3])
def test_pytorchjob_pods_are_restricted(nodes: int) -> None:
    obj = jobs.build(request(), settings(nodes, "PyTorchJob"))
    replicas = obj["spec"]["pytorchReplicaSpecs"]
    assert set(replicas) == ({"Master", "Worker"} if nodes > 1 else {"Master"})
    for replica in replicas.values():
        pod = replica["template"]["spec"]
        assert_restricted(pod)
        (container,) = pod["containers"]
        assert_writable_paths(pod["volumes"], container["volumeMounts"])
        # Guaranteed QoS: limits equal requests
        assert container["resources"]["limits"] == container["resources"]["requests"]
        assert pod["serviceAccountName"] == "faco-workload"  # manifests/base creates it in the pipeline's namespace


def test_service_account_is_configurable() -> None:
    s = ClusterSettings(multi_node=MultiNode(nodes=2, namespace="faco", service_account="faco-workload"))
    pod = jobs.pytorchjob(request(), s)["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]["spec"]
    assert pod["serviceAccountName"] == "faco-workload"
    override = jobs.trainjob(request(), s)["spec"]["podSpecOverrides"][0]
    assert override["serviceAccountName"] == "faco-workload"
    assert jobs.training_runtime(s)["spec"]["template"]["spec"]["replicatedJobs"][0]["template"]["spec"][
        "template"]["spec"]["serviceAccountName"] == "faco-workload"


def test_trainjob_brings_writable_paths_and_names_the_restricted_runtime() -> None:
    obj = jobs.build(request(), settings(2, "TrainJob"))
    assert obj["spec"]["runtimeRef"] == {"name": "faco-torch", "kind": "TrainingRuntime",
                                         "apiGroup": "trainer.kubeflow.org"}
    override = obj["spec"]["podSpecOverrides"][0]
    (container,) = override["containers"]
    assert container["name"] == jobs.TRAINJOB_NODE
    assert_writable_paths(override["volumes"], container["volumeMounts"])


def test_training_runtime_is_restricted_and_validates() -> None:
    runtime = jobs.training_runtime(ClusterSettings(), namespace="faco")
    jsonschema.validate(runtime, RUNTIME_SCHEMA)
    assert runtime["kind"] == "TrainingRuntime" and runtime["metadata"]["namespace"] == "faco"
    (job,) = runtime["spec"]["template"]["spec"]["replicatedJobs"]
    assert job["name"] == jobs.TRAINJOB_NODE  # the TrainJob's podSpecOverrides target it
    pod = job["template"]["spec"]["template"]
    assert pod["metadata"]["labels"]["app.kubernetes.io/component"] == "train"  # the training NetworkPolicy
    assert_restricted(pod["spec"])
    assert [c["name"] for c in pod["spec"]["containers"]] == [jobs.TRAINJOB_NODE]
    cluster = jobs.training_runtime(settings(2, "TrainJob").model_copy(update={"multi_node": MultiNode(
        nodes=2, job_api="TrainJob", runtime="faco-torch-gpu", runtime_kind="ClusterTrainingRuntime")}), "faco")
    jsonschema.validate(cluster, RUNTIME_SCHEMA)
    assert cluster["kind"] == "ClusterTrainingRuntime" and "namespace" not in cluster["metadata"]


def test_runtime_manifest_is_the_builders_object() -> None:
    manifest = yaml.safe_load((ROOT / "manifests/base/trainer-runtime/training-runtime.yaml").read_text())
    s = ClusterSettings(multi_node=MultiNode(service_account="faco-workload"))
    assert manifest == jobs.training_runtime(s), "regenerate manifests/base/trainer-runtime/training-runtime.yaml"
    assert s.multi_node.runtime == manifest["metadata"]["name"]


def test_identity_matches_the_images() -> None:
    for dockerfile in sorted((ROOT / "docker").glob("Dockerfile.*")):
        text = dockerfile.read_text()
        assert f"USER {images.USER_ID}:{images.GROUP_ID}" in text, dockerfile.name
        assert f"HOME={images.HOME_DIR}" in text, dockerfile.name


def _checkov() -> str | None:
    env = os.environ.get("CHECKOV_BIN")
    local = Path(sys.executable).parent / "checkov"
    return env or (str(local) if local.exists() else shutil.which("checkov"))


def trainjob_pod(runtime: dict[str, Any], job: dict[str, Any]) -> dict[str, Any]:
    """The pod template a TrainJob's node runs: the runtime's, with the job's trainer and overrides applied."""
    (rjob,) = runtime["spec"]["template"]["spec"]["replicatedJobs"]
    pod = copy.deepcopy(rjob["template"]["spec"]["template"])
    trainer, (override,) = job["spec"]["trainer"], job["spec"]["podSpecOverrides"]
    (container,) = pod["spec"]["containers"]
    container.update(image=trainer["image"], command=trainer["command"], env=trainer["env"],
                     resources=trainer["resourcesPerNode"], volumeMounts=override["containers"][0]["volumeMounts"])
    pod["spec"].update({k: override[k] for k in ("volumes", "nodeSelector", "tolerations", "serviceAccountName")})
    return pod


def as_jobs(name: str, templates: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Pod templates as batch/v1 Jobs, which checkov scans.

    checkov skips custom resources (a PyTorchJob or TrainJob counts 0 resources); its pod checks
    apply to workload kinds, and Job is the nearest: the operators run pods to completion.
    """
    return [{"apiVersion": "batch/v1", "kind": "Job",
             "metadata": {**copy.deepcopy(t["metadata"]), "name": f"{name}-{role}", "namespace": "faco"},
             "spec": {"template": {"metadata": t["metadata"], "spec": {**t["spec"], "restartPolicy": "OnFailure"}}}}
            for role, t in templates.items()]


def test_checkov_passes_on_generated_job_pods(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    checkov = _checkov()
    if checkov is None:
        pytest.skip("checkov not installed (in its own venv: its pins clash with dvc-s3; see docs/deploy.md)")
    assert images.TRAIN.env
    monkeypatch.setenv(images.TRAIN.env, "sha256:" + "ab" * 32)  # releases pin the image by digest
    s = ClusterSettings(multi_node=MultiNode(nodes=2, namespace="faco", service_account="faco-workload"))
    req = jobs.TrainJobRequest(request().name, "faco", images.TRAIN.ref, request().train_args)
    policies = [{**p, "metadata": {**p["metadata"], "namespace": "faco"}}
                for p in yaml.safe_load_all((ROOT / "manifests/base/networkpolicy.yaml").read_text())]
    pytorchjob = jobs.pytorchjob(req, s)
    trainjob = jobs.trainjob(req, s.model_copy(update={"multi_node": s.multi_node.model_copy(
        update={"job_api": "TrainJob"})}))
    objects = [*as_jobs("pytorchjob", {k.lower(): r["template"]
                                       for k, r in pytorchjob["spec"]["pytorchReplicaSpecs"].items()}),
               *as_jobs("trainjob", {"node": trainjob_pod(jobs.training_runtime(s), trainjob)}), *policies]
    path = tmp_path / "training-jobs.yaml"
    path.write_text(yaml.safe_dump_all(objects))
    result = subprocess.run([checkov, "--framework", "kubernetes", "--file", str(path), "--skip-download",
                             "--output", "json"], capture_output=True, text=True,
                            env={**os.environ, "BC_SKIP_MAPPING": "TRUE"})
    report = json.loads(result.stdout)
    assert report["summary"]["resource_count"] >= len(objects), report["summary"]
    failed = [f"{c['check_id']} {c['resource']}" for c in report["results"]["failed_checks"]]
    assert failed == [], failed
    assert report["summary"]["passed"] > 100
    skipped = {c["check_id"] for c in report["results"]["skipped_checks"]}
    deploy = (ROOT / "docs/deploy.md").read_text()
    for check_id in skipped:
        assert check_id in deploy, f"{check_id} skipped but not documented in docs/deploy.md"


def test_hand_run_examples_run_the_builders_command() -> None:
    """manifests/base/examples run exactly what `jobs.build` gives their pods: `torchrun … -m faco.stages.train`."""
    study = Path("/mnt/checkpoints/studies/faco-paper")
    args = train_args(study / "params.yaml", study / "artifacts/splits", 0.5, study / "artifacts/train/cr_0.5", None,
                      study / "work/cr_0.5")
    examples = ROOT / "manifests/base/examples"
    pytorchjob = yaml.safe_load((examples / "pytorchjob-multinode.yaml").read_text())
    built = jobs.build(jobs.TrainJobRequest("x", "faco", "img", args), settings(2, "PyTorchJob"))
    for role, replica in pytorchjob["spec"]["pytorchReplicaSpecs"].items():
        (container,) = replica["template"]["spec"]["containers"]
        (expected,) = built["spec"]["pytorchReplicaSpecs"][role]["template"]["spec"]["containers"]
        assert container["command"] == expected["command"], role
    trainjob = yaml.safe_load((examples / "trainjob-multinode.yaml").read_text())
    built = jobs.build(jobs.TrainJobRequest("x", "faco", "img", args), settings(2, "TrainJob"))
    assert trainjob["spec"]["trainer"]["command"] == built["spec"]["trainer"]["command"]
