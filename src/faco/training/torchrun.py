"""Single-node multi-process training: every accelerator of the pod, one process each.

With more than one visible accelerator the train stage (`faco.stages.train.run`) runs itself as
`torchrun --standalone --nproc-per-node=N -m faco.stages.train CONFIG ...`, the same entry the
multi-node Training Operator jobs run on every node (`faco.k8s.jobs`); with one it runs in the
calling process. `--standalone` gives a local rendezvous on a free port. The ranks' output streams to this
process's stdout/stderr; a failed rank fails the caller with one line.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

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


def processes(nproc: int | None = None) -> int:
    """`nproc` when given (a positive integer), else `visible_accelerators()`."""
    n = nproc if nproc is not None else visible_accelerators()
    if n < 1:
        raise ConfigError(f"nproc {n}: expected a positive integer")
    return n


def under_launcher() -> bool:
    """Whether this process is one rank of a launched run (torchrun or an operator set RANK)."""
    return "RANK" in os.environ


def command(nproc: int, module: str, args: list[str]) -> list[str]:
    """The single-node torchrun command line for `python -m MODULE ARGS` on `nproc` processes."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
            "-m", module, *args]


def run(nproc: int, module: str, args: list[str]) -> None:
    """Run `command(nproc, module, args)`, its output streamed; raise one line when a rank fails."""
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    proc = subprocess.Popen(command(nproc, module, args), env=env)
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
