"""KFP pipelines: committed YAML is fresh, cluster settings compile in, no secret value leaks."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from faco import images, kfp_cli
from faco.errors import ConfigError
from faco.evaluation import sandbox
from faco.k8s.settings import POD_SANDBOX_MODE, ClusterSettings, MultiNode
from faco.kfp_glue import plan, sweep_cells

ROOT = Path(__file__).resolve().parents[1]
SMOKE = (ROOT / "configs" / "smoke.yaml").read_text()
FAKE_SECRETS = {
    "OPENAI_API_KEY": "sk-fake-openai-4f9a1c77e2b0",
    "HF_TOKEN": "hf_fakeTokenValue8c1d2e3f",
    "AWS_ACCESS_KEY_ID": "AKIAFAKEACCESSKEY123",
    "AWS_SECRET_ACCESS_KEY": "fakeSecretAccessKey/9x8y7z6w5v4u",
}


@pytest.fixture(autouse=True)
def _no_digest_pins(monkeypatch: pytest.MonkeyPatch) -> None:
    for image in (images.CPU, images.TRAIN):
        assert image.env
        monkeypatch.delenv(image.env, raising=False)


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("compiled")
    return {p.stem: p for p in kfp_cli.compile_all(out)}


def docs(path: Path) -> list[dict[str, Any]]:
    """The YAML documents of a compiled pipeline (parsed once per file version: they are half a MB)."""
    return _parsed(str(path), path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _parsed(path: str, mtime_ns: int) -> list[dict[str, Any]]:
    return list(yaml.load_all(Path(path).read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))


def platform(path: Path) -> dict[str, Any]:
    """executor label -> its kubernetes platform config."""
    (spec,) = [d for d in docs(path) if "platforms" in d]
    return spec["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


def executors(path: Path) -> dict[str, Any]:
    return docs(path)[0]["deploymentSpec"]["executors"]


@pytest.mark.parametrize("name", sorted(kfp_cli.PIPELINES))
def test_committed_yaml_is_fresh(compiled: dict[str, Path], name: str) -> None:
    committed = ROOT / "pipelines" / f"{name}.yaml"
    assert committed.is_file(), f"{committed} missing: run `faco kfp compile`"
    assert docs(compiled[name]) == docs(committed), f"{committed} is stale: run `faco kfp compile`"


def test_train_task_gets_gpus_placement_shm_pvc_and_secret_names(compiled: dict[str, Path]) -> None:
    s = ClusterSettings()
    train = executors(compiled["corruption_study"])["exec-train"]["container"]
    assert train["image"] == images.TRAIN.ref
    assert train["resources"]["accelerator"]["resourceType"] == "nvidia.com/gpu"
    assert train["resources"]["accelerator"]["resourceCount"] == "8"
    k8s = platform(compiled["corruption_study"])["exec-train"]
    assert k8s["nodeSelector"]["labels"] == s.node_selector
    assert k8s["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert k8s["emptyDirMounts"] == [{"volumeName": "dshm", "mountPath": "/dev/shm", "medium": "Memory",
                                      "sizeLimit": "64Gi"}]
    assert [m["mountPath"] for m in k8s["pvcMount"]] == ["/mnt/checkpoints"]
    assert {e["secretName"] for e in k8s["secretAsEnv"]} == {"faco-hf", "faco-s3"}
    gen = platform(compiled["corruption_study"])["exec-generate"]
    assert [e["secretName"] for e in gen["secretAsEnv"]] == ["faco-openai", "faco-s3"]
    assert executors(compiled["corruption_study"])["exec-ingest"]["container"]["image"] == images.CPU.ref


def test_no_secret_value_in_any_compiled_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var, value in FAKE_SECRETS.items():
        monkeypatch.setenv(var, value)
    multi = ClusterSettings(multi_node=MultiNode(nodes=4))
    paths = kfp_cli.compile_all(tmp_path / "single") + kfp_cli.compile_all(tmp_path / "multi", multi)
    for path in paths:
        text = path.read_text()
        leaked = [var for var, value in FAKE_SECRETS.items() if value in text]
        assert not leaked, f"{path.name} contains the value of {leaked}"


def test_multi_node_settings_compile_a_launcher(tmp_path: Path) -> None:
    s = ClusterSettings(multi_node=MultiNode(nodes=4, job_api="TrainJob"))
    (path,) = [p for p in kfp_cli.compile_all(tmp_path, s) if p.stem == "corruption_study"]
    ex = executors(path)
    assert "exec-launch-training-job" in ex and "exec-train" not in ex
    assert platform(path)["exec-launch-training-job"]["pvcMount"][0]["mountPath"] == "/mnt/checkpoints"


def test_image_digest_pin(monkeypatch: pytest.MonkeyPatch) -> None:
    digest = "sha256:" + "ab" * 32
    assert images.TRAIN.env and images.TRAIN.ref.endswith(":" + images.TRAIN.tag)
    monkeypatch.setenv(images.TRAIN.env, digest)
    assert images.TRAIN.ref == f"{images.TRAIN.repository}@{digest}"
    monkeypatch.setenv(images.TRAIN.env, "latest")
    with pytest.raises(ValueError, match="sha256"):
        _ = images.TRAIN.ref


def test_registry_org_and_tag_are_set_at_compile_time(tmp_path: Path) -> None:
    """`faco kfp compile --registry/--org/--tag` (or `images:` in the settings file) names every image
    the compiled YAML runs, the multi-node job's included; nothing of the default is left."""
    import subprocess
    import sys

    faco = str(Path(sys.executable).parent / "faco")
    (tmp_path / "multi.yaml").write_text("multi_node: {nodes: 2}\nimages: {org: other}\n")
    done = subprocess.run([faco, "kfp", "compile", "--out", str(tmp_path / "out"),
                           "--settings", str(tmp_path / "multi.yaml"),
                           "--registry", "registry.example.org:5000", "--tag", "2.0.0-rc1"],
                          cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "out" / "corruption_study.yaml").read_text()
    refs = {e["container"]["image"] for e in executors(tmp_path / "out" / "corruption_study.yaml").values()}
    assert refs == {"registry.example.org:5000/other/faco-cpu:2.0.0-rc1",
                    "registry.example.org:5000/other/faco-train:2.0.0-rc1"}
    spec = docs(tmp_path / "out" / "corruption_study.yaml")[0]
    launchers = [t for c in spec["components"].values() if "dag" in c for t in c["dag"]["tasks"].values()
                 if t["componentRef"]["name"].startswith("comp-launch-training-job")]
    assert launchers and {t["inputs"]["parameters"]["image"]["runtimeValue"]["constant"] for t in launchers} == {
        "registry.example.org:5000/other/faco-train:2.0.0-rc1"}  # the image the training job's pods run
    assert "ghcr.io" not in text and "faco-project" not in text


def test_plan_applies_ratios_and_checks_recovery() -> None:
    p = plan(SMOKE, [1.0, 0.0], ["train.seed=3"])
    assert p.ratios == [0.0, 1.0] and p.recovery and p.study.train.seed == 3
    assert plan(p.config_yaml).study == p.study  # the resolved text is self-contained
    with pytest.raises(ConfigError, match=r"must contain 0\.0"):
        plan(SMOKE, [0.5, 1.0])


def test_sweep_cells_cross_grids_and_seeds() -> None:
    cells = sweep_cells([[0.0, 1.0], [0.0, 0.5, 1.0]], [0, 1], ["train.epochs=1"])
    assert len(cells) == 4
    assert cells[1] == {"ratios": [0.0, 1.0], "overrides": ["train.epochs=1", "train.seed=1"]}
    with pytest.raises(ConfigError):
        sweep_cells([], [0])


def policy_labels() -> dict[str, dict[str, str]]:
    """manifest -> the pod labels its `isolate-untrusted-code` NetworkPolicy selects, read from manifests/."""
    out = {}
    for path in sorted((ROOT / "manifests").rglob("networkpolicy.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc["kind"] == "NetworkPolicy" and doc["metadata"]["name"] == "isolate-untrusted-code":
                out[str(path.relative_to(ROOT))] = doc["spec"]["podSelector"]["matchLabels"]
    return out


@pytest.mark.parametrize("name", ["corruption_study", "recovery", "sweep"])
def test_code_executing_evaluation_carries_the_policy_label(name: str) -> None:
    """The label the committed pipeline sets on evaluate pods is the one the NetworkPolicy selects."""
    selected = policy_labels()
    assert set(selected) == {"manifests/base/networkpolicy.yaml"}  # in the namespace the steps run in
    (label,) = {json.dumps(v, sort_keys=True) for v in selected.values()}
    path = ROOT / "pipelines" / f"{name}.yaml"
    args = {ex: e["container"]["args"] for ex, e in executors(path).items() if "container" in e}
    functions = {ex: a[a.index("--function_to_execute") + 1] for ex, a in args.items() if "--function_to_execute" in a}
    labelled = {ex: k8s for ex, k8s in platform(path).items() if "podMetadata" in k8s}
    assert labelled, f"{name}: no task carries the untrusted-code label"
    for ex, k8s in labelled.items():
        assert json.dumps(k8s["podMetadata"]["labels"], sort_keys=True) == label, ex
        assert "secretAsEnv" not in k8s, f"{ex}: model-written code runs there, so no Secrets"
    assert {ex for ex, f in functions.items() if f == "evaluate_untrusted"} == set(labelled)
    # the plain branch evaluates the same models
    assert sum(f == "evaluate" for f in functions.values()) == len(labelled)


@pytest.mark.parametrize("name", ["corruption_study", "recovery", "sweep"])
def test_code_executing_evaluation_sets_the_pod_sandbox_mode(name: str) -> None:
    """A pod cannot make the strict sandbox's user namespaces (seccomp RuntimeDefault), so every
    `evaluate_untrusted` container sets FACO_SANDBOX=auto (the weak, Landlock mode there); no other does."""
    path = ROOT / "pipelines" / f"{name}.yaml"
    modes = {ex: {e["name"]: e.get("value") for e in execu["container"].get("env", [])}.get(sandbox.MODE_ENV)
             for ex, execu in executors(path).items() if "container" in execu}
    untrusted = {ex for ex, f in _functions(path).items() if f == "evaluate_untrusted"}
    assert untrusted and POD_SANDBOX_MODE == "auto"
    assert {ex: mode for ex, mode in modes.items() if mode is not None} == dict.fromkeys(untrusted, POD_SANDBOX_MODE)


@pytest.mark.parametrize("name", ["corruption_study", "recovery", "sweep"])
def test_isolated_evaluation_reads_benchmarks_prefetched_once_with_network(name: str) -> None:
    """One `prefetch_benchmarks` task (network, hub token, no label) runs in the code-executing branch
    outside any loop, and every no-network evaluate task takes its output as input `benchmarks`."""
    path = ROOT / "pipelines" / f"{name}.yaml"
    spec = docs(path)[0]
    args = {ex: e["container"]["args"] for ex, e in executors(path).items() if "container" in e}
    functions = {ex: a[a.index("--function_to_execute") + 1] for ex, a in args.items() if "--function_to_execute" in a}
    (fetch,) = [ex for ex, f in functions.items() if f == "prefetch_benchmarks"]
    k8s = platform(path)[fetch]
    assert "podMetadata" not in k8s and [e["secretName"] for e in k8s["secretAsEnv"]] == ["faco-hf"]
    assert executors(path)[fetch]["container"]["image"] == images.CPU.ref  # no GPU, no model
    dags = {c: comp["dag"]["tasks"] for c, comp in spec["components"].items() if "dag" in comp}
    dags["root"] = spec["root"]["dag"]["tasks"]
    (home,) = [c for c, tasks in dags.items() if "prefetch-benchmarks" in tasks]
    assert not home.startswith("comp-for-loop")  # once per run, not per ratio
    untrusted = [t for tasks in dags.values() for t in tasks.values()
                 if t["componentRef"]["name"].startswith("comp-evaluate-untrusted")]
    assert untrusted and all("benchmarks" in t["inputs"]["artifacts"] for t in untrusted)
    for t in untrusted:
        comp = spec["components"][t["componentRef"]["name"]]
        assert comp["inputDefinitions"]["artifacts"]["benchmarks"]["artifactType"]["schemaTitle"] == "system.Dataset"


@pytest.mark.parametrize("name", ["corruption_study", "recovery", "sweep"])
def test_every_task_runs_as_the_images_non_root_user(name: str) -> None:
    """What kfp-kubernetes 2.17 can set (docs/kubeflow.md): UID/GID 10001 and runAsNonRoot on every
    container task; importers are no containers of ours."""
    path = ROOT / "pipelines" / f"{name}.yaml"
    containers = {ex for ex, e in executors(path).items() if "container" in e}
    assert containers
    for ex in containers:
        context = platform(path)[ex]["securityContext"]
        assert context == {"runAsUser": str(images.USER_ID), "runAsGroup": str(images.GROUP_ID),
                           "runAsNonRoot": True}, ex


@pytest.mark.parametrize("name", ["corruption_study", "recovery", "sweep"])
def test_every_task_records_the_kfp_run_id(name: str) -> None:
    """Every container task gets the run id from its pod's `pipeline/runid` label (downward API, so
    the cache key does not change per run); faco writes it into each manifest's meta.kfp_run_id."""
    path = ROOT / "pipelines" / f"{name}.yaml"
    for ex in (ex for ex, e in executors(path).items() if "container" in e):
        assert {"name": "FACO_KFP_RUN_ID", "fieldPath": "metadata.labels['pipeline/runid']"} in \
            platform(path)[ex]["fieldPathAsEnv"], ex


def test_an_artifact_made_in_a_kfp_task_names_its_run(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    faco = str(Path(sys.executable).parent / "faco")
    env = {**os.environ, "FACO_KFP_RUN_ID": "4d2c-run"}
    done = subprocess.run([faco, "ingest", str(ROOT / "configs" / "smoke.yaml"), "--out", "src", "--set",
                           "ingest.per_source_cap=2"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    shown = subprocess.run([faco, "lineage", "show", "src", "--json"], cwd=tmp_path, capture_output=True, text=True)
    assert json.loads(shown.stdout)["kfp_run_id"] == "4d2c-run"


def test_plan_says_when_evaluation_runs_model_code() -> None:
    assert not plan(SMOKE).untrusted_code
    code = plan(SMOKE, overrides=['evaluate.benchmarks=[{"name": "humaneval", "limit": 2}]',
                                  "evaluate.allow_code_execution=true"])
    assert code.untrusted_code


def _functions(path: Path) -> dict[str, str]:
    """executor label -> the component function it runs."""
    args = {ex: e["container"]["args"] for ex, e in executors(path).items() if "container" in e}
    return {ex: a[a.index("--function_to_execute") + 1] for ex, a in args.items() if "--function_to_execute" in a}


@pytest.mark.parametrize("name", ["corruption_study", "recovery", "sweep"])
def test_train_steps_launch_torchrun_on_the_checkpoint_volume_with_retries(name: str) -> None:
    """Every single-node train step runs through `faco.stages.train.run` (one process per GPU),
    keeps its work dir on the checkpoint PVC and is retried with backoff."""
    path = ROOT / "pipelines" / f"{name}.yaml"
    s = ClusterSettings()
    trainers = {ex for ex, f in _functions(path).items() if f in {"train", "train_from", "recover"}}
    assert trainers
    for ex in trainers:
        container = executors(path)[ex]["container"]
        source = container["command"][-1]
        assert "train_model(" in source and "torchrun --standalone --nproc-per-node=<visible GPUs>" in source
        assert {"name": "FACO_WORK_ROOT", "value": f"{s.checkpoint_mount}/work"} in container["env"]
        assert [m["mountPath"] for m in platform(path)[ex]["pvcMount"]] == [s.checkpoint_mount]
    spec = docs(path)[0]
    dags = [comp["dag"]["tasks"] for comp in spec["components"].values() if "dag" in comp]
    tasks = [t for d in [*dags, spec["root"]["dag"]["tasks"]] for t in d.values()]
    train_tasks = [t for t in tasks if "executorLabel" not in t and t["componentRef"]["name"].startswith(
        ("comp-train", "comp-recover", "comp-evaluate"))]
    assert train_tasks
    for t in train_tasks:
        assert t["retryPolicy"] == {"maxRetryCount": 3, "backoffDuration": "60s", "backoffFactor": 2.0,
                                    "backoffMaxDuration": "7200s"}, t["taskInfo"]


def test_every_component_input_has_a_description() -> None:
    """The components' `Args:` docstrings reach the compiled YAML (the KFP UI shows them)."""
    spec = docs(ROOT / "pipelines" / "corruption_study.yaml")[0]
    containers = {n: c for n, c in spec["components"].items() if "dag" not in c and "inputDefinitions" in c}
    assert len(containers) >= 10
    for name, comp in containers.items():
        for kind in ("parameters", "artifacts"):
            for inp, d in comp["inputDefinitions"].get(kind, {}).items():
                assert d.get("description"), f"{name}: input {inp} has no description"


def test_report_outputs_are_the_rendered_files_and_the_folder() -> None:
    spec = docs(ROOT / "pipelines" / "corruption_study.yaml")[0]
    outputs = spec["components"]["comp-report"]["outputDefinitions"]["artifacts"]
    assert {k: v["artifactType"]["schemaTitle"] for k, v in outputs.items()} == {
        "report": "system.Artifact", "markdown": "system.Markdown", "html": "system.HTML"}
    analyze = spec["components"]["comp-analyze"]["outputDefinitions"]["artifacts"]
    assert analyze["metrics"]["artifactType"]["schemaTitle"] == "system.Metrics"


def test_plan_slices_change_only_with_what_each_task_reads() -> None:
    """Editing the report title or evaluation settings leaves the generate and train inputs byte-identical."""
    base = plan(SMOKE).slices
    edited = plan(SMOKE, overrides=["report.title=Another title", "evaluate.batch_size=3",
                                    "evaluate.per_epoch=false", "analyze.bootstrap=50"]).slices
    assert {t for t in base if base[t] != edited[t]} == {"evaluate", "analyze"}
    assert plan(SMOKE, overrides=["train.seed=5"]).slices.keys() == base.keys()
    seed = plan(SMOKE, overrides=["train.seed=5"]).slices
    assert {t for t in base if base[t] != seed[t]} == {"train", "evaluate"}  # evaluate records the seed
    # a cross-section value: ingest's contamination check reads the benchmark list, nothing else of evaluate
    bench = plan(SMOKE, overrides=['evaluate.benchmarks=[{"name": "arc_challenge", "limit": 3}]']).slices
    assert {t for t in base if base[t] != bench[t]} == {"ingest", "evaluate"}


def test_a_slice_loads_back_with_only_what_it_holds() -> None:
    from faco import config_slices

    p = plan(SMOKE)
    train_study = config_slices.load(p.slices["train"])
    assert train_study.train == p.study.train and train_study.section_hash("train") == p.study.section_hash("train")
    with pytest.raises(AttributeError):
        _ = train_study.generate  # not in the slice: no silent default
    ingest_study = config_slices.load(p.slices["ingest"])
    assert ingest_study.evaluate.benchmarks == p.study.evaluate.benchmarks
    with pytest.raises(AttributeError):
        _ = ingest_study.evaluate.batch_size
    with pytest.raises(ConfigError, match=r"config_yaml: train\.epochs"):
        config_slices.load(p.slices["train"].replace("epochs: 2", "epochs: zero"))


def _param_source(task: dict[str, Any], name: str = "config_yaml") -> dict[str, Any]:
    return task["inputs"]["parameters"][name]


def test_compiled_tasks_get_their_config_slice_from_plan() -> None:
    spec = docs(ROOT / "pipelines" / "corruption_study.yaml")[0]
    root = spec["root"]["dag"]["tasks"]
    for task, key in [("ingest", "ingest_config"), ("generate", "generate_config"), ("corrupt", "corrupt_config"),
                      ("base-model", "train_config"), ("grid-cells", "config_yaml")]:
        assert _param_source(root[task])["taskOutputParameter"] == {"producerTask": "plan", "outputParameterKey": key}
    # the grids (nested pipelines behind the conditions) receive the slices, and their tasks use them
    dags = {c: comp["dag"]["tasks"] for c, comp in spec["components"].items() if "dag" in comp}
    wants = {"comp-train": "train_config", "comp-train-from": "train_config", "comp-evaluate": "evaluate_config",
             "comp-evaluate-untrusted": "evaluate_config", "comp-judge": "judge_config",
             "comp-analyze": "analyze_config", "comp-report": "config_yaml"}
    seen = set()
    for tasks in dags.values():
        for t in tasks.values():
            ref = t["componentRef"]["name"].rstrip("-0123456789")  # comp-train-2 -> comp-train
            if ref in wants:
                src = _param_source(t)["componentInputParameter"]
                assert src.endswith(wants[ref]), (ref, src)
                seen.add(ref)
    assert seen == set(wants)


def test_generate_keeps_its_chain_cache_on_the_checkpoint_volume() -> None:
    """Paid chains survive the pod: the cache (FACO_CACHE_DIR) is on the PVC that every run mounts."""
    path = ROOT / "pipelines" / "corruption_study.yaml"
    s = ClusterSettings()
    k8s = platform(path)["exec-generate"]
    assert [m["mountPath"] for m in k8s["pvcMount"]] == [s.checkpoint_mount]
    assert [e["secretName"] for e in k8s["secretAsEnv"]] == ["faco-openai", "faco-s3"]  # S3: a cache there
    env = executors(path)["exec-generate"]["container"]["env"]
    assert {"name": "FACO_CACHE_DIR", "value": f"{s.checkpoint_mount}/cache"} in env


def _dag_tasks(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """dag component (or root) -> its tasks."""
    dags = {c: comp["dag"]["tasks"] for c, comp in spec["components"].items() if "dag" in comp}
    dags["root"] = spec["root"]["dag"]["tasks"]
    return dags


def _function(spec: dict[str, Any], task: dict[str, Any]) -> str | None:
    """The component function a task runs (None for a nested pipeline or an importer)."""
    comp = spec["components"][task["componentRef"]["name"]]
    label = comp.get("executorLabel")
    container = spec["deploymentSpec"]["executors"].get(label, {}).get("container") if label else None
    args = (container or {}).get("args", [])
    return args[args.index("--function_to_execute") + 1] if "--function_to_execute" in args else None


@pytest.mark.parametrize("name", ["corruption_study", "sweep"])
def test_the_plan_picks_one_of_the_eight_grids(name: str) -> None:
    """Base row, judge and seeds as `faco study` runs them (issue 19, defect 8): one nested grid per
    variant, run when plan's `variant` output names it; the judge runs in the `+judge` grids only."""
    from faco.kfp_glue import variant

    spec = docs(ROOT / "pipelines" / f"{name}.yaml")[0]
    names = {variant(*v) for v in [(i, j, r) for i in (False, True) for j in (False, True) for r in (False, True)]}
    grids = {c for c in spec["components"] if c.startswith("comp-faco-grid-")}
    assert {c.removeprefix("comp-faco-grid-") for c in grids} == {n.replace("+", "-") for n in names}
    conditions = json.dumps(spec)
    # one condition per grid but the last of each chain (isolated, plain), its Else
    assert all(f"== '{n}'" in conditions for n in names if not n.endswith("+judge+recovery"))
    for grid in grids:
        tasks = spec["components"][grid]["dag"]["tasks"]
        loops = [spec["components"][t["componentRef"]["name"]]["dag"]["tasks"] for t in tasks.values()
                 if t["componentRef"]["name"].startswith("comp-for-loop")]
        functions = [_function(spec, t) for t in [*tasks.values(), *(t for loop in loops for t in loop.values())]]
        judged = "-judge" in grid
        # the base model, each grid cell, and with recovery each start and recovered model
        assert functions.count("judge") == judged * (2 + 2 * ("-recovery" in grid)), (grid, functions)
        assert ("train_from" in functions) == ("-recovery" in grid), grid
        (analyze,) = [t for t in tasks.values() if _function(spec, t) == "analyze"]
        assert "base_evaluation" in analyze["inputs"]["artifacts"]  # the base row
        assert ("base_judged" in analyze["inputs"]["artifacts"]) == judged
        assert analyze["inputs"]["parameters"]["seeds"]["componentInputParameter"] == "seeds"
    if name == "corruption_study":
        root = spec["root"]["inputDefinitions"]["parameters"]
        assert root["seeds"]["defaultValue"] == [] and "seeds" in spec["root"]["dag"]["tasks"]["plan"]["inputs"][
            "parameters"]
        assert _function(spec, spec["root"]["dag"]["tasks"]["base-model"]) == "base_model"


@pytest.mark.parametrize("name", ["corruption_study", "recovery", "sweep"])
def test_each_task_downloads_only_what_it_reads(name: str) -> None:
    """Issue 19, defect 6: analyze takes evaluations and loss logs, never a model; recovery retrains the
    one model a train task of its own loop iteration made (no list of models anywhere); evaluate takes
    the model, its epoch snapshots and the ingest artifact; judge one model."""
    spec = docs(ROOT / "pipelines" / f"{name}.yaml")[0]
    model_inputs = {}
    for comp in spec["components"].values():
        if "executorLabel" not in comp:
            continue
        arts = comp.get("inputDefinitions", {}).get("artifacts", {})
        executor = spec["deploymentSpec"]["executors"][comp["executorLabel"]]
        if "container" not in executor:  # an importer
            continue
        args = executor["container"]["args"]
        function = args[args.index("--function_to_execute") + 1]
        for inp, d in arts.items():
            assert not (d.get("isArtifactList") and d["artifactType"]["schemaTitle"] == "system.Model"), function
            if d["artifactType"]["schemaTitle"] == "system.Model":
                model_inputs.setdefault(function, set()).add(inp)
        if function == "analyze":
            assert {d["artifactType"]["schemaTitle"] for d in arts.values()} == {"system.Artifact"}
            assert set(arts) >= {"evaluations", "logs", "base_evaluation"}
    assert set(model_inputs) <= {"evaluate", "evaluate_untrusted", "judge", "train_from"}
    assert all(v == {"model"} for f, v in model_inputs.items() if f != "train_from")
    assert model_inputs.get("train_from", {"start"}) == {"start"}
    for tasks in _dag_tasks(spec).values():
        for t in tasks.values():
            function = _function(spec, t)
            arts = t.get("inputs", {}).get("artifacts", {})
            if function == "train_from" and name != "recovery":
                assert arts["start"]["taskOutputArtifact"]["outputArtifactKey"] == "model"
                assert arts["start"]["taskOutputArtifact"]["producerTask"] in tasks  # the same loop iteration
            if function in ("evaluate", "evaluate_untrusted"):
                assert "sources" in arts  # issue 19, defect 3: the held-out questions are a declared input
                if "snapshots" in arts:  # straight from a train task, or passed into a condition
                    src = arts["snapshots"]
                    key = src.get("taskOutputArtifact", {}).get("outputArtifactKey") or src["componentInputArtifact"]
                    assert key.endswith("snapshots"), src


def test_evaluate_declares_the_ingest_artifact_it_reads() -> None:
    """Issue 19, defect 3: `heldout` questions come from a declared input, not from walking the model's
    lineage on a disk the pod does not have."""
    spec = docs(ROOT / "pipelines" / "corruption_study.yaml")[0]
    for c, comp in spec["components"].items():
        if c.rstrip("-0123456789") in ("comp-evaluate", "comp-evaluate-untrusted"):
            arts = comp["inputDefinitions"]["artifacts"]
            assert arts["sources"]["artifactType"]["schemaTitle"] == "system.Dataset", c
            assert arts["snapshots"].get("isOptional"), c  # the base model has none
