"""Single-node multi-process training: every accelerator of the pod, one process each.

With more than one visible accelerator the train stage runs as
`torchrun --standalone --nproc-per-node=N -m faco.training.launch CONFIG ...`, the same entry the
multi-node Training Operator jobs run on every node (`faco.k8s.jobs`); with one it runs in this
process. `--standalone` gives a local rendezvous on a free port. The ranks' output streams to this
process's stdout/stderr; a failed rank fails the caller with one line.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from faco.config import Study
from faco.errors import EXIT_INTERNAL, ConfigError, FacoError
from faco.signals import GRACE_S

#: Environment variable forcing the process count (CPU tests, or fewer processes than GPUs).
ENV_NPROC = "FACO_NPROC"


class TrainingProcessFailed(FacoError):
    """A torchrun rank exited non-zero."""

    exit_code = EXIT_INTERNAL


def visible_accelerators() -> int:
    """Processes to train with: `FACO_NPROC` when set, else the visible CUDA devices (at least 1)."""
    raw = os.environ.get(ENV_NPROC, "").strip()
    if raw:
        if not raw.isdigit() or int(raw) < 1:
            raise ConfigError(f"{ENV_NPROC}={raw!r}: expected a positive integer")
        return int(raw)
    import torch

    return max(1, torch.cuda.device_count())


def launch_args(config: Path, splits: Path, ratio: float, out: Path, start: Path | None = None,
                work_dir: Path | None = None, snapshots: Path | None = None) -> list[str]:
    """Arguments of `faco.training.launch` for one split."""
    args = [str(config), "--splits", str(splits), "--ratio", repr(ratio), "--out", str(out)]
    if work_dir is not None:
        args += ["--work-dir", str(work_dir)]
    if snapshots is not None:
        args += ["--snapshots", str(snapshots)]
    return [*args, "--start", str(start)] if start is not None else args


def command(nproc: int, args: list[str]) -> list[str]:
    """The single-node torchrun command line for `faco.training.launch ARGS` on `nproc` processes."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
            "-m", "faco.training.launch", *args]


def run(nproc: int, args: list[str]) -> None:
    """Run `command(nproc, args)`, its output streamed; raise one line when a rank fails."""
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    proc = subprocess.Popen(command(nproc, args), env=env)
    try:
        rc = proc.wait()
    except BaseException:  # Ctrl-C or SIGTERM: the ranks stop at a step's end, as a single process does
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=GRACE_S + 5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        raise
    if rc != 0:
        raise TrainingProcessFailed(f"training failed: torchrun ({nproc} processes) exited with code {rc}; "
                                    "the failing rank's error is in the log above")


def train_split(study: Study, splits: Path, ratio: float, out: Path, start: Path | None = None,
                work_dir: Path | None = None, nproc: int | None = None, config_text: str | None = None,
                snapshots: Path | None = None) -> Path:
    """The train stage on every visible accelerator (`nproc`: override the count); in-process on one.

    `config_text`: what the ranks load (default: `study` as YAML; a KFP task passes its config slice).
    `snapshots`: the epoch snapshots as their own artifact there (`train.run`).
    """
    n = nproc if nproc is not None else visible_accelerators()
    if n < 1:
        raise ConfigError(f"nproc {n}: expected a positive integer")
    if n == 1:
        from faco.stages import train

        return train.run(study, splits, ratio, out, start=start, work_dir=work_dir, snapshots=snapshots)
    with tempfile.TemporaryDirectory(prefix="faco-torchrun-") as tmp:
        config = Path(tmp) / "config.yaml"
        config.write_text(config_text if config_text is not None else study.to_yaml())
        run(n, launch_args(config, splits.resolve(), ratio, out.resolve(), start.resolve() if start else None,
                           work_dir.resolve() if work_dir else None, snapshots.resolve() if snapshots else None))
    return out
