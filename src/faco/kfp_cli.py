"""Kubeflow Pipelines front end: compile the pipelines, run one locally, submit one to a cluster.

Mounted by the CLI as `faco kfp compile|run --local|submit`. The pipelines and components ship in
the package (`faco.pipelines`, `faco.components`; `pipelines/` and `components/` in the source
tree), so an installed faco compiles and submits without a checkout.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from faco.config import parse_config
from faco.errors import FacoError
from faco.k8s.settings import ClusterSettings

#: Compiled file stem -> module with `build(settings)`.
PIPELINES = {
    "audit": "faco.pipelines.audit",
    "corruption_study": "faco.pipelines.corruption_study",
    "recovery": "faco.pipelines.recovery",
    "sweep": "faco.pipelines.sweep",
}


def build(name: str, settings: ClusterSettings | None = None) -> Any:
    """The pipeline `name` (a key of PIPELINES) built for `settings` (images: see `compile_here`)."""
    if name not in PIPELINES:
        raise FacoError(f"unknown pipeline {name!r}; known: {', '.join(PIPELINES)}")
    return importlib.import_module(PIPELINES[name]).build(settings or ClusterSettings())


def compile_all(out_dir: Path | None = None, settings: ClusterSettings | None = None,
                names: list[str] | None = None) -> list[Path]:
    """Compile the pipelines (`names`, default all) to `<out_dir>/<name>.yaml` (default: ./pipelines).

    Compiles in a child process, for two reasons: the images' registry, org and tag come from
    `settings` and each component names its image when it is imported (`faco.images.configure`
    first, then the import), and protobuf's pure-Python backend keeps the YAML the same on every
    run: kfp 2.17 renames colliding components of nested pipelines in protobuf-map order
    (`_merge_component_spec`), which the default upb backend randomises per process, and the
    sweep (a study holding several grid variants, inside a loop) has such collisions. No upstream
    issue found.
    """
    out = (out_dir or Path("pipelines")).resolve()
    out.mkdir(parents=True, exist_ok=True)
    chosen = names or list(PIPELINES)
    unknown = [n for n in chosen if n not in PIPELINES]
    if unknown:
        raise FacoError(f"unknown pipeline {', '.join(unknown)}; known: {', '.join(PIPELINES)}")
    code = ("import sys; from pathlib import Path; from faco.kfp_cli import compile_here; "
            "from faco.k8s.settings import ClusterSettings; "
            "compile_here(Path(sys.argv[1]), ClusterSettings.model_validate_json(sys.argv[2]), sys.argv[3:])")
    env = {**os.environ, "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION": "python"}
    done = subprocess.run([sys.executable, "-c", code, str(out), (settings or ClusterSettings()).model_dump_json(),
                           *chosen], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise FacoError(f"compiling the pipelines failed:\n{done.stderr[-4000:]}")
    return [out / f"{name}.yaml" for name in chosen]


def compile_here(out: Path, settings: ClusterSettings, names: list[str]) -> None:
    """Compile pipelines `names` into `out` in this process, which must not have imported the
    components yet (see `compile_all`)."""
    from kfp import compiler

    from faco import images

    if any(m.startswith("faco.components.") for m in sys.modules):
        raise FacoError("compile_here: the components are already imported with their images")
    images.configure(settings.images.registry, settings.images.org, settings.images.tag)
    for name in names:
        compiler.Compiler().compile(build(name, settings), str(out / f"{name}.yaml"))


def _checked(text: str, config_path: Path, overrides: list[str] | None) -> None:
    """A bad config, or one the pipeline cannot run (several kinds of false chain), fails here, not in a task."""
    from faco.stages.corrupt import one_kind

    one_kind(parse_config(text, str(config_path), overrides))


def run_local(config_path: Path, ratios: list[float] | None = None, overrides: list[str] | None = None,
              pipeline_root: Path = Path("kfp-local"), *, docker: bool = False, package: Path | None = None,
              network: bool = False, seeds: list[int] | None = None) -> Path:
    """Run the corruption study with kfp.local; returns the report directory.

    In this environment, or with `docker` as a cluster runs it: every task of the compiled `package`
    (default: the packaged one, `packaged("corruption_study")`) in a container of its image that sees
    only its declared inputs (`faco.kfp_docker`), with a network only when `network`. `seeds`: the
    pipeline's `seeds` argument (the grid once per seed), passed only when given.
    """
    text = config_path.read_text()
    _checked(text, config_path, overrides)
    args: dict[str, Any] = {"config_yaml": text, "ratios": list(ratios or []), "overrides": list(overrides or [])}
    if seeds:
        args["seeds"] = list(seeds)
    if not docker:
        run_pipeline_local("corruption_study", args, pipeline_root)
        return report_dir(pipeline_root.resolve())
    from faco import kfp_docker

    package = package or packaged("corruption_study")
    return report_dir(kfp_docker.run_package(package, args, pipeline_root, network=network))


def packaged(name: str) -> Path:
    """The compiled YAML of pipeline `name` shipped in the package (default settings, as committed)."""
    if name not in PIPELINES:
        raise FacoError(f"unknown pipeline {name!r}; known: {', '.join(PIPELINES)}")
    import faco.pipelines

    return Path(faco.pipelines.__file__).parent / f"{name}.yaml"


def run_pipeline_local(name: str, arguments: dict[str, Any], pipeline_root: Path = Path("kfp-local"),
                       caching: bool = False) -> Path:
    """Run pipeline `name` (a key of PIPELINES) with kfp.local in this environment; returns its run directory.

    Every component runs as a subprocess of this virtual environment; Kubernetes settings (GPUs,
    volumes, Secrets, labels) are ignored. Raises when a task fails. `caching`: kfp.local's task
    cache (under `<pipeline_root>/.kfp_cache`, keyed like the backend's by component, command and
    inputs), so a rerun reuses every task whose inputs did not change.
    """
    from kfp import local

    root = pipeline_root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    before = set(root.iterdir())
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root), enable_caching=caching)
    build(name)(**arguments)  # kfp.local raises when a task fails (raise_on_error defaults to True)
    new = sorted((p for p in set(root.iterdir()) - before if p.name != ".kfp_cache"), key=lambda p: p.stat().st_mtime)
    if not new:
        raise FacoError(f"kfp.local wrote no run under {root}")
    return new[-1]


def report_dir(pipeline_root: Path) -> Path:
    """The newest report folder (the report task's `report` artifact) under a kfp.local pipeline root."""
    found = sorted((p for p in pipeline_root.rglob("report/report.md") if (p.parent / "manifest.json").is_file()),
                   key=lambda p: p.stat().st_mtime)
    if not found:
        raise FacoError(f"no report under {pipeline_root}")
    return found[-1].parent


def default_run_name(config_text: str, config_path: str) -> str:
    """`<study name>-<config hash[:12]>`: runs of the same config are easy to find."""
    study = parse_config(config_text, config_path)
    return f"{study.name}-{study.config_hash()[:12]}"


def submit_request(host: str, config_path: Path, package: Path, *, pipeline: str = "corruption_study",
                   experiment: str = "faco", run_name: str | None = None, ratios: list[float] | None = None,
                   overrides: list[str] | None = None, enable_caching: bool = True,
                   namespace: str | None = None) -> dict[str, Any]:
    """The run request `submit` sends: the `kfp.Client.create_run_from_pipeline_package` arguments.

    Refuses a request the backend would reject for a missing argument: every pipeline parameter
    without a default in the compiled `package` must be given.
    """
    import hashlib

    import yaml

    text = config_path.read_text()
    _checked(text, config_path, overrides)
    args: dict[str, Any] = {"config_yaml": text, "overrides": list(overrides or [])}
    if pipeline == "corruption_study":
        args["ratios"] = list(ratios or [])
    spec = next(iter(yaml.safe_load_all(package.read_text())))
    params = spec.get("root", {}).get("inputDefinitions", {}).get("parameters", {})
    missing = [n for n, p in params.items() if "defaultValue" not in p and not p.get("isOptional") and n not in args]
    if missing:
        raise FacoError(f"{package}: the pipeline needs argument(s) {', '.join(missing)}")
    return {"host": host, "namespace": namespace, "experiment_name": experiment,
            "run_name": run_name or default_run_name(text, str(config_path)),
            "pipeline_name": spec.get("pipelineInfo", {}).get("name"),
            "pipeline_package_path": str(package),
            "pipeline_package_sha256": hashlib.sha256(package.read_bytes()).hexdigest(),
            "enable_caching": enable_caching, "arguments": args}


def submit(host: str, config_path: Path, *, pipeline: str = "corruption_study", experiment: str = "faco",
           run_name: str | None = None, package: Path | None = None, ratios: list[float] | None = None,
           overrides: list[str] | None = None, enable_caching: bool = True,
           settings: ClusterSettings | None = None, namespace: str | None = None,
           dry_run: bool = False) -> str:
    """Submit a run of `config_path` to the KFP API at `host`; returns the run id.

    `package`: a compiled pipeline YAML (default: compile `pipeline` now, for `settings`). The bearer
    token comes from `$KFP_TOKEN` when set, else from whatever `kfp.Client` finds (kubeconfig,
    in-cluster). `dry_run`: return the exact request as JSON instead, with no network.
    """
    import json
    import tempfile

    _checked(config_path.read_text(), config_path, overrides)  # before compiling
    with tempfile.TemporaryDirectory() as tmp:
        if package is None:
            (package,) = compile_all(Path(tmp), settings, [pipeline])
        req = submit_request(host, config_path, package, pipeline=pipeline, experiment=experiment,
                             run_name=run_name, ratios=ratios, overrides=overrides,
                             enable_caching=enable_caching, namespace=namespace)
        if dry_run:
            return json.dumps(req, indent=2)
        import kfp

        client = kfp.Client(host=host, namespace=namespace, existing_token=os.environ.get("KFP_TOKEN") or None)
        run = client.create_run_from_pipeline_package(
            req["pipeline_package_path"], arguments=req["arguments"], run_name=req["run_name"],
            experiment_name=req["experiment_name"], enable_caching=req["enable_caching"], namespace=namespace,
        )
    return str(run.run_id)
