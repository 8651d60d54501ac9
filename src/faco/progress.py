"""Progress display for long work (rich), quiet when not on a terminal."""

from __future__ import annotations

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


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate with a progress bar on a terminal, a start/end line otherwise."""
    if not sys.stderr.isatty():
        console.print(f"faco: {description} …", markup=False, highlight=False, soft_wrap=True)
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


def log(message: str) -> None:
    """One `faco: ...` line on stderr, never wrapped (logs stay greppable)."""
    console.print(f"faco: {message}", markup=False, highlight=False, soft_wrap=True)


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
