"""The pipeline as a cluster runs it (marker `containers`, run by `make containers`): every task of the
compiled pipeline in a fresh container of the built images (the wheel as the image installs it), whose
pipeline root holds only the task's declared input artifacts (`faco.kfp_docker`).

Needs a container engine with the images built: `make containers` sets up podman
(docker/podman/setup.sh), builds the images (`make images`) and runs these tests, which start their
own podman API service unless DOCKER_HOST names a live engine.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from faco import images

pytestmark = pytest.mark.containers

ROOT = Path(__file__).resolve().parents[1]
FACO = str(Path(sys.executable).with_name("faco"))  # the console script installed in this venv
CONFIG = ROOT / "configs" / "cluster-smoke.yaml"
SEEDS = "0,1"


@pytest.fixture(scope="module")
def engine_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The environment of a live container engine: $DOCKER_HOST as given, else a podman API service
    started here for these tests (with docker/podman/containers.conf unless CONTAINERS_CONF is set)."""
    if os.environ.get("DOCKER_HOST"):
        yield dict(os.environ)
        return
    podman = shutil.which("podman")
    if podman is None:
        pytest.fail("no container engine: `make containers` installs podman (docker/podman/setup.sh)")
    sock = tmp_path_factory.mktemp("podman") / "api.sock"
    env = {"CONTAINERS_CONF": str(ROOT / "docker" / "podman" / "containers.conf"), **os.environ}
    service = subprocess.Popen([podman, "system", "service", "--time=0", f"unix://{sock}"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            if sock.exists():
                break
            time.sleep(0.1)
        yield {**env, "DOCKER_HOST": f"unix://{sock}"}
    finally:
        service.terminate()
        service.wait(timeout=60)


def faco(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([FACO, *args], capture_output=True, text=True, env=env, cwd=cwd)


# --- what a task can see -------------------------------------------------------------------------



def test_a_task_sees_its_declared_inputs_and_nothing_else(engine_env: dict[str, str], tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The same compiled pipeline in kfp.local's shared root sees the other task's output; isolated, only
    what it declares: not the undeclared output, the checkout, the network or a writable root."""
    from faco import kfp_docker

    package = tmp_path / "probe.yaml"
    subprocess.run([sys.executable, str(ROOT / "tests" / "probe_pipeline.py"), images.CPU.ref, str(package)],
                   check=True, cwd=tmp_path)
    monkeypatch.setenv("DOCKER_HOST", engine_env["DOCKER_HOST"])
    run = kfp_docker.run_package(package, {"checkout": str(ROOT)}, tmp_path / "isolated")
    seen = json.loads(next(run.rglob("look/seen")).read_text())
    assert seen == {"declared": "declared", "undeclared": False, "checkout": False, "network": False,
                    "uid": images.USER_ID, "root_writable": False, "checkpoints": True}
    # the control: kfp.local's own runner shares one root, so the undeclared file is there to see
    from kfp import components, local

    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "shared"))
    components.load_component_from_file(str(package))(checkout=str(ROOT))
    shared = json.loads(next((tmp_path / "shared").rglob("look/seen")).read_text())
    assert shared["undeclared"] is True and shared["checkout"] is True


# --- the cluster-shaped study ----------------------------------------------------------------------

def _table(analysis: Path) -> list[list[str]]:
    with (analysis / "table1.csv").open() as fh:
        return list(csv.reader(fh))


def _analysis_of(report: Path, root: Path) -> Path:
    """The analysis artifact under `root` that a report was made from (its manifest's parent)."""
    from faco import artifacts

    (parent,) = artifacts.read_manifest(report)["parents"]
    found = [p.parent for p in root.rglob("analysis.json")
             if artifacts.manifest_hash(p.parent) == parent["manifest_sha256"]]
    assert found, f"no analysis with manifest {parent['manifest_sha256']} under {root}"
    return found[0]


def test_cluster_smoke_in_containers_ends_as_faco_study(engine_env: dict[str, str], tmp_path: Path) -> None:
    """`faco kfp run --local --docker --seeds 0,1`: the compiled pipeline, every task in its image and
    isolated, ends with the Findings, analysis.json and Table 1 of `faco study --seeds 0,1` (this venv)."""
    from faco.stages.report import read_findings

    study = tmp_path / "study"
    reference = faco("study", str(CONFIG), "--out", str(study), "--seeds", SEEDS, env=dict(os.environ),
                     cwd=tmp_path)
    assert reference.returncode == 0, reference.stderr[-4000:]
    printed = reference.stdout.splitlines()
    assert printed[0] == "Findings:" and printed[-1].startswith("report: ") and len(printed) > 3

    proc = faco("kfp", "run", "--local", "--docker", str(CONFIG), "--seeds", SEEDS, "--root", str(tmp_path / "kfp"),
                env=engine_env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-6000:]
    (line,) = proc.stdout.splitlines()  # stdout: the report folder, nothing else
    report = Path(line)
    assert read_findings(report) == printed[1:-1]
    analysis = _analysis_of(report, tmp_path / "kfp")
    assert _table(analysis) == _table(study / "analysis")
    assert json.loads((analysis / "analysis.json").read_text()) == json.loads(
        (study / "analysis" / "analysis.json").read_text())


def test_ctrl_c_ends_the_run_and_leaves_no_container(engine_env: dict[str, str], tmp_path: Path) -> None:
    """Ctrl-C while a task's container runs: exit 130 with one line, and none of the run's containers
    (label faco.dev/kfp-local-root) is left running or stopped."""
    import signal

    from docker.client import DockerClient
    from terminal import default_sigint

    from faco.kfp_docker import RUN_LABEL

    root = (tmp_path / "kfp").resolve()
    run = subprocess.Popen([FACO, "kfp", "run", "--local", "--docker", str(ROOT / "configs" / "smoke.yaml"),
                            "--root", str(root)], env=engine_env, cwd=tmp_path, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=default_sigint)
    client = DockerClient(base_url=engine_env["DOCKER_HOST"])
    mine = {"label": f"{RUN_LABEL}={root}"}
    try:
        for _ in range(600):  # until a task's container runs (the first, plan, within seconds)
            if client.containers.list(filters=mine) or run.poll() is not None:
                break
            time.sleep(0.5)
        assert run.poll() is None, run.communicate()[1][-3000:]
        run.send_signal(signal.SIGINT)
        _, err = run.communicate(timeout=300)
        assert run.returncode == 130, err[-3000:]
        assert err.strip().splitlines()[-1] == "error: interrupted"
        assert client.containers.list(all=True, filters=mine) == []
    finally:
        if run.poll() is None:
            run.kill()
        client.close()
