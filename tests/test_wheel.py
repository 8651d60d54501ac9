"""The package as the images install it: a wheel built from the tracked files, installed with
`--no-deps` into a fresh virtual environment (its dependencies reached through a `.pth` line, after
the wheel's own site-packages), run as the `faco` executable from an unrelated working directory
with no checkout in sight."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _copy_tree(root: Path, dest: Path) -> None:
    """The files git tracks or would track (a clone of the working tree), links kept as links."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                            capture_output=True, check=True).stdout.decode()
    for rel in filter(None, listed.split("\0")):
        src, dst = root / rel, dest / rel
        if not src.is_symlink() and not src.is_file():
            continue  # deleted in the working tree
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            dst.symlink_to(os.readlink(src))
        else:
            shutil.copy2(src, dst)


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding only the faco wheel; returns its bin/ folder."""
    if not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout")
    base = tmp_path_factory.mktemp("wheel")
    _copy_tree(ROOT, base / "tree")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(base / "dist"), str(base / "tree")], check=True, capture_output=True)
    (wheel,) = (base / "dist").glob("faco-*.whl")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(base / "venv")], check=True)
    python = base / "venv" / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                    "--no-index", str(wheel)], check=True, capture_output=True)
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # the dependencies, from this environment: a plain path line, so its own .pth files (faco's
    # editable install among them) are not processed and the wheel's faco is the only one
    Path(site, "zz-faco-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return base / "venv" / "bin"


def _run(venv: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(PATH=f"{venv}{os.pathsep}{env['PATH']}", FACO_DATA_DIR=str(ROOT / "data"),  # as the images set it
               FACO_CACHE_DIR=str(cwd / ".cache"))
    return subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True)


def test_faco_is_the_wheels(venv: Path, tmp_path: Path) -> None:
    done = _run(venv, tmp_path, str(venv / "python"), "-c", "import faco; print(faco.__file__)")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith(str(venv.parent)), done.stdout


def test_tasks_render_writes_every_twin(venv: Path, tmp_path: Path) -> None:
    """The extension-less MMLU template is package data (issue 19, defect 2)."""
    done = _run(venv, tmp_path, str(venv / "faco"), "tasks", "render", "tasks")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "tasks" / "_faco_mmlu_template_yaml").is_file()
    assert (tmp_path / "tasks" / "faco_mmlu.yaml").is_file()


def test_the_paper_config_validates_and_names_a_shipped_deepspeed_config(venv: Path, tmp_path: Path) -> None:
    """`train.deepspeed: zero3` resolves inside the installed package (issue 19, defect 1)."""
    done = _run(venv, tmp_path, str(venv / "faco"), "validate", str(ROOT / "configs" / "faco-paper.yaml"))
    assert done.returncode == 0, done.stderr
    code = ("from faco.config import load_config; from faco.training.loop import deepspeed_config; "
            "import json; "
            f"print(json.dumps(deepspeed_config(load_config({str(ROOT / 'configs' / 'faco-paper.yaml')!r}).train)))")
    done = _run(venv, tmp_path, str(venv / "python"), "-c", code)
    assert done.returncode == 0, done.stderr
    path, stage = json.loads(done.stdout)
    assert path.startswith(str(venv.parent)) and path.endswith("faco/deepspeed/zero3.json") and stage == 3


def test_compile_and_submit_without_a_checkout(venv: Path, tmp_path: Path) -> None:
    """The installed faco compiles the pipelines it ships (byte for byte the committed YAML) and
    builds a run request (issue 19, defect 9)."""
    done = _run(venv, tmp_path, str(venv / "faco"), "kfp", "compile", "--out", "compiled")
    assert done.returncode == 0, done.stderr
    for name in ("corruption_study", "recovery", "sweep"):
        (shipped,) = venv.parent.glob(f"lib/python*/site-packages/faco/pipelines/{name}.yaml")  # package data
        assert shipped.read_bytes() == (ROOT / "pipelines" / f"{name}.yaml").read_bytes(), name
        assert (tmp_path / "compiled" / f"{name}.yaml").read_bytes() == shipped.read_bytes(), name
    done = _run(venv, tmp_path, str(venv / "faco"), "kfp", "submit", str(ROOT / "configs" / "smoke.yaml"),
                "--host", "http://kfp.invalid", "--dry-run")
    assert done.returncode == 0, done.stderr
    request = json.loads(done.stdout)
    committed = next(yaml.safe_load_all((ROOT / "pipelines" / "corruption_study.yaml").read_text()))
    assert request["pipeline_name"] == committed["pipelineInfo"]["name"]
    assert request["arguments"]["config_yaml"] == (ROOT / "configs" / "smoke.yaml").read_text()


def test_docker_run_uses_the_shipped_pipeline(venv: Path, tmp_path: Path) -> None:
    """`faco kfp run --local --docker` runs the compiled YAML shipped in the package, so from an unrelated
    cwd without a checkout it gets as far as the container engine (none here: one line, exit 4)."""
    sock = tmp_path / "no-engine.sock"
    env_cwd = tmp_path / "elsewhere"
    env_cwd.mkdir()
    done = _run(venv, env_cwd, "env", f"DOCKER_HOST=unix://{sock}", str(venv / "faco"), "kfp", "run", "--local",
                "--docker", str(ROOT / "configs" / "smoke.yaml"), "--root", str(tmp_path / "kfp"))
    assert done.returncode == 4, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"error: no container engine answers at unix://{sock}"), line
    assert sorted(p.name for p in env_cwd.iterdir()) == []
