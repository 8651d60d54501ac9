"""SIGTERM handled like Ctrl-C: Kubernetes stops a pod with SIGTERM, then SIGKILL after a grace period.

Under `handled()` (the `faco` command, the training launcher) SIGTERM raises `Terminated` at once,
so the stage unwinds as on Ctrl-C: its temporary folder and lock are removed and faco exits 143.
Inside `safe_points()` (training) it only asks to stop: the Trainer stops at the end of the current
optimizer step (or as soon as a checkpoint being saved is whole), keeping its last whole checkpoint,
and `raise_if_requested()` raises `Terminated` then. If no safe point comes within `GRACE_S`
seconds, `Terminated` is raised wherever the run is; a second SIGTERM raises it at once.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from types import FrameType

from faco.errors import Terminated

#: Seconds from SIGTERM to the end of training's current step before faco stops wherever it is
#: (well within Kubernetes' default grace period of 30 s).
GRACE_S = 10.0

_state = {"safe": 0, "requested": False}


def _say(message: str) -> None:
    """One log line from a signal handler: a plain write, safe while another print is under way."""
    with suppress(OSError):
        os.write(2, f"faco: {message}\n".encode())


def _on_term(signum: int, frame: FrameType | None) -> None:
    if _state["safe"] and not _state["requested"]:
        _state["requested"] = True
        signal.setitimer(signal.ITIMER_REAL, GRACE_S)
        _say(f"terminated (SIGTERM): stopping at the end of this training step (at most {GRACE_S:g} s)")
        return
    raise Terminated("terminated (SIGTERM)")


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    if _state["requested"]:
        raise Terminated(f"terminated (SIGTERM): no safe point within {GRACE_S:g} s")


@contextmanager
def handled() -> Iterator[None]:
    """Within the block, SIGTERM raises `Terminated` (or, in `safe_points()`, asks training to stop)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old_term = signal.signal(signal.SIGTERM, _on_term)
    old_alarm = signal.signal(signal.SIGALRM, _on_alarm)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGTERM, old_term)
        signal.signal(signal.SIGALRM, old_alarm)
        _state.update(safe=0, requested=False)


@contextmanager
def safe_points() -> Iterator[None]:
    """A region that stops only where `stop_requested()` is polled (training steps)."""
    _state["safe"] += 1
    try:
        yield
    finally:
        _state["safe"] -= 1


def stop_requested() -> bool:
    """Whether SIGTERM asked the current safe-point region to stop."""
    return bool(_state["requested"])


def raise_if_requested() -> None:
    """Raise `Terminated` if SIGTERM asked to stop (at the safe point the region reached)."""
    if _state["requested"]:
        signal.setitimer(signal.ITIMER_REAL, 0)
        raise Terminated("terminated (SIGTERM)")
