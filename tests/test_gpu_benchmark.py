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
