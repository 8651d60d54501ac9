"""faco's messages and progress display: the `faco` logger, and the terminal's `faco: ...` lines.

Every library module logs through the `faco` logger (`log`, `debug`; `track` says when long work
starts). By default one handler writes each message as a `faco: <message>` line on stderr (rich,
never wrapped, so logs stay greppable) at INFO, so every front end (the CLI, a DVC stage, a Kubeflow
component, a torchrun worker) shows the same lines; the `faco` logger does not propagate to the root
logger while it has that handler. An application embedding faco routes or silences the messages
with `logging`: `uninstall()` hands them to its own logging configuration (the `faco` logger then
propagates), `logging.getLogger("faco").setLevel(logging.WARNING)` silences them. The CLI's
`--quiet` and `-v` set the handler's level (`install`).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

T = TypeVar("T")
console = Console(stderr=True)
_live: list[Progress] = []  # bars on screen: a failing command closes them before its error line


def close_displays() -> None:
    """Close every progress bar still open (faco's, and libraries' tqdm bars such as the Trainer's),
    so that none is drawn after a failing command's last line when the objects holding it are collected."""
    while _live:
        _live.pop().stop()
    tqdm = sys.modules.get("tqdm")
    for bar in list(getattr(getattr(tqdm, "tqdm", None), "_instances", ())):
        bar.close()


LOGGER = logging.getLogger("faco")


class ConsoleHandler(logging.Handler):
    """One `faco: <message>` line on stderr per record (whatever sys.stderr is when it is written)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            console.print(f"faco: {self.format(record)}", markup=False, highlight=False, soft_wrap=True)
        except Exception:
            self.handleError(record)


def _handler() -> ConsoleHandler | None:
    return next((h for h in LOGGER.handlers if isinstance(h, ConsoleHandler)), None)


def install(level: int = logging.INFO) -> None:
    """faco's terminal lines at `level` (WARNING: quiet, DEBUG: verbose), replacing any installed before."""
    uninstall()
    handler = ConsoleHandler(level)
    LOGGER.addHandler(handler)
    LOGGER.setLevel(level)
    LOGGER.propagate = False


def uninstall() -> None:
    """No terminal lines of faco's own: its messages go where the application's logging sends them."""
    if (handler := _handler()) is not None:
        LOGGER.removeHandler(handler)
    LOGGER.setLevel(logging.NOTSET)
    LOGGER.propagate = True


def log(message: str) -> None:
    """A progress message (INFO) of the `faco` logger."""
    LOGGER.info(message, stacklevel=2)


def debug(message: str) -> None:
    """A detail shown with `faco -v` (DEBUG)."""
    LOGGER.debug(message, stacklevel=2)


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate with a progress bar on a terminal, a start line otherwise (none when quiet)."""
    handler = _handler()
    if handler is None or not sys.stderr.isatty() or not LOGGER.isEnabledFor(logging.INFO):
        LOGGER.info(f"{description} …", stacklevel=2)
        yield from items
        return
    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=False,
    ) as progress:
        _live.append(progress)
        try:
            yield from progress.track(items, total=total, description=description)
        finally:
            if progress in _live:
                _live.remove(progress)


@contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """While a command works, whatever writes to stdout goes to stderr: libraries' prints and loggers
    (the Trainer's loss lines, DeepSpeed's), C code and child processes alike (file descriptor 1 is
    redirected). A command's stdout then carries its results only."""
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no stdout at all: nothing to keep clean
        yield
        return
    os.dup2(2, 1)
    try:
        yield
    finally:
        try:
            sys.stdout.flush()
        finally:
            os.dup2(saved, 1)
            os.close(saved)


install()  # the default: every front end shows faco's lines
