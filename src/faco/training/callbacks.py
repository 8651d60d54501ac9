"""Trainer callbacks of every faco run: SIGTERM stops at a step's end (`faco.signals`); token counts
that survive a resume (kept in each checkpoint's `trainer_state.json`)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from transformers import TrainerCallback
from transformers.trainer_callback import ExportableState

from faco import signals


class StopOnTerm(TrainerCallback):  # type: ignore[misc]
    """After SIGTERM, stop at the end of the current optimizer step without starting a checkpoint
    (the last whole one is kept), or right after a checkpoint being saved is whole. With several
    processes they agree first (any one asked to stop stops them all at the same step)."""

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if _agreed(signals.stop_requested()):
            control.should_save = False
            control.should_training_stop = True

    def on_save(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if signals.stop_requested() and not _distributed():
            control.should_training_stop = True


def _distributed() -> bool:
    import torch

    return torch.distributed.is_available() and torch.distributed.is_initialized() \
        and torch.distributed.get_world_size() > 1


def _agreed(stop: bool) -> bool:
    """`stop` on any process, every process told (one all-reduce per step when distributed)."""
    if not _distributed():
        return stop
    import torch

    dist = torch.distributed
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else None
    flag = torch.tensor([1.0 if stop else 0.0], device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


class TokenCount(TrainerCallback, ExportableState):  # type: ignore[misc]
    """Real and processed (padded) token slots of the batches trained on, counted as the loss is
    computed (a batch carries its counts under KEY) and saved with every checkpoint."""

    KEY = "faco_tokens"

    def __init__(self) -> None:
        self.real = 0
        self.slots = 0
        self.base_real = 0  # counted before a resume

    @property
    def session_real(self) -> int:
        return self.real - self.base_real

    def state(self) -> dict[str, Any]:
        return {"args": {}, "attributes": {"real": self.real, "slots": self.slots}}

    def restore(self, counts: dict[str, int] | None) -> None:
        """Continue from a checkpoint's counts."""
        if counts:
            self.real, self.slots = int(counts["real"]), int(counts["slots"])
            self.base_real = self.real

    @classmethod
    def find(cls, callbacks: Iterable[Any]) -> TokenCount:
        """The run's counter among the Trainer's callbacks (the Trainer may have rebuilt it on resume)."""
        return next(cb for cb in callbacks if isinstance(cb, cls))

    @classmethod
    def add(cls, callbacks: Iterable[Any], inputs: dict[str, Any]) -> None:
        """Take a batch's counts out of its inputs (the model must not see them) and add them up."""
        counts = inputs.pop(cls.KEY, None)
        if counts is not None:
            counter = cls.find(callbacks)
            counter.real += int(counts[0])
            counter.slots += int(counts[1])


def resumed_tokens(checkpoint: Path) -> dict[str, int] | None:
    """The token counts a checkpoint's `trainer_state.json` holds (None for one made before they were kept)."""
    try:
        state = json.loads((checkpoint / "trainer_state.json").read_text())
        data = state["stateful_callbacks"][TokenCount.__name__]
        attributes = (data[0] if isinstance(data, list) else data)["attributes"]
        return {"real": int(attributes["real"]), "slots": int(attributes["slots"])}
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return None
