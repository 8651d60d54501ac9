"""`dvc repro` in a fresh clone runs the smoke study offline; a second repro does no work."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml


@pytest.mark.slow
def test_dvc_repro_fresh_clone(tmp_path: Path, root: Path) -> None:
    if not (root / ".git").exists():
        pytest.skip("needs a git checkout")
    clone = tmp_path / "clone"
    # a clone of the working tree as it is (tracked files), like a fresh `git clone`
    files = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True).stdout
    for rel in filter(None, files.decode().split("\0")):
        src = root / rel
        if src.is_file():
            (clone / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, clone / rel)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(clone / "src")}
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "clone"]):
        subprocess.run(cmd, cwd=clone, check=True, env=env)
    params = yaml.safe_load((clone / "params.yaml").read_text())
    params["corrupt"]["ratios"] = [0.0, 1.0]  # two models keep the test quick; the full grid is in test_study
    (clone / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    first = subprocess.run([sys.executable, "-m", "dvc", "repro"], cwd=clone, env=env, capture_output=True,
                           text=True)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "Running stage 'train@1'" in first.stdout or "Running stage 'train@1.0'" in first.stdout
    assert (clone / "artifacts" / "report" / "report.md").is_file()
    assert (clone / "reports" / "metrics.json").is_file()

    second = subprocess.run([sys.executable, "-m", "dvc", "repro"], cwd=clone, env=env, capture_output=True,
                            text=True)
    assert second.returncode == 0
    assert "Running stage" not in second.stdout
    status = subprocess.run([sys.executable, "-m", "dvc", "status"], cwd=clone, env=env, capture_output=True,
                            text=True)
    assert "Data and pipelines are up to date" in status.stdout

    metrics = subprocess.run([sys.executable, "-m", "dvc", "metrics", "show", "--json"], cwd=clone, env=env,
                             capture_output=True, text=True)
    assert "pearson_r" in metrics.stdout
