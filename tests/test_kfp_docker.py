"""`faco kfp run --local --docker` without a container engine, and the pods it reads from the compiled
pipeline (fast: no engine needed; the container runs themselves are tests/test_containers.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from faco import images
from faco.pod_spec import pods, task_images

ROOT = Path(__file__).resolve().parents[1]
FACO = str(Path(sys.executable).with_name("faco"))  # the console script installed in this venv
PACKAGE = ROOT / "pipelines" / "corruption_study.yaml"


def test_docker_run_without_an_engine_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    sock = tmp_path / "no-engine.sock"
    proc = subprocess.run([FACO, "kfp", "run", "--local", "--docker", str(ROOT / "configs" / "smoke.yaml"),
                           "--root", str(tmp_path / "kfp")], capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "DOCKER_HOST": f"unix://{sock}"})
    assert proc.returncode == 4, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith(f"error: no container engine answers at unix://{sock}: start Docker, or podman")
    assert proc.stdout == "" and sorted(p.name for p in tmp_path.iterdir()) == []


def test_container_options_need_docker(tmp_path: Path) -> None:
    proc = subprocess.run([FACO, "kfp", "run", "--local", "--network", str(ROOT / "configs" / "smoke.yaml")],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == "error: kfp run: --package and --network go with --docker"


def test_pods_of_the_compiled_study() -> None:
    """What each task's container gets comes from the compiled YAML's Kubernetes settings."""
    text = PACKAGE.read_text()
    assert task_images(text) == {images.CPU.ref, images.TRAIN.ref}
    found = pods(text)
    assert {p.user for p in found.values()} == {f"{images.USER_ID}:{images.GROUP_ID}"}
    assert found["train"].claims == {"faco-checkpoints": "/mnt/checkpoints"} and "/dev/shm" in found["train"].memory
    assert found["evaluate-untrusted"].labels == {"faco.dev/executes-untrusted-code": "true"}
    assert found["ingest"].claims == {} and found["ingest"].labels == {}
