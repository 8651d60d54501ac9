"""Progress display for long work (rich), quiet when not on a terminal."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

T = TypeVar("T")
console = Console(stderr=True)


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
        yield from progress.track(items, total=total, description=description)


def log(message: str) -> None:
    """One `faco: ...` line on stderr, never wrapped (logs stay greppable)."""
    console.print(f"faco: {message}", markup=False, highlight=False, soft_wrap=True)
