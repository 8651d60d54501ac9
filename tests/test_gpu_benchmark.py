"""benchmarks/gpu.sh (the GPU benchmark for a lent device) refuses with one line where no CUDA GPU is
visible, having run and written nothing: the check that can run on a CPU machine."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible: the benchmark would run")
def test_gpu_benchmark_refuses_without_cuda(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu.sh"), str(out)], capture_output=True, text=True,
                          env={**os.environ, "PYTHON": sys.executable}, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "error: benchmarks/gpu.sh: no CUDA GPU is visible here (torch.cuda.is_available() is False); nothing was run"]
    assert proc.stdout == "" and not out.exists()


def test_gpu_benchmark_settings_validate(tmp_path: Path) -> None:
    """The study the benchmark runs (configs/mini.yaml with its --set list) passes `faco validate`, its
    DeepSpeed config named as shipped, so a lent device's one call is not spent on a config error."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import gpu
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    sets = [a for s in gpu.SETTINGS for a in ("--set", s)]
    proc = subprocess.run([str(Path(sys.executable).with_name("faco")), "validate", str(ROOT / "configs" / "mini.yaml"),
                           *sets], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
