"""faco's Trainer and what it trains on: the dataset, the counting collator, the callback that
records every sample's loss (and a model snapshot) at each epoch's end."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from transformers import Trainer, TrainerCallback

from faco import signals
from faco.config import TrainConfig
from faco.training.callbacks import TokenCount
from faco.training.data import Example, per_sample_loss, response_only_loss


def _world() -> tuple[int, int]:
    """(rank, world size) of this process, (0, 1) alone."""
    if not torch.distributed.is_available() or not torch.distributed.is_initialized():
        return 0, 1
    return torch.distributed.get_rank(), torch.distributed.get_world_size()


class Rows(torch.utils.data.Dataset):  # type: ignore[misc]
    """Tokenised rows (`input_ids`, `labels`) as a map-style dataset."""

    def __init__(self, rows: list[dict[str, list[int]]]) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, list[int]]:
        return self.rows[i]


class Counting:
    """Wraps a collator; tags each batch with its real and processed token slots (`TokenCount` adds
    them up as the batches are trained on)."""

    def __init__(self, inner: Callable[[list[dict[str, Any]]], dict[str, Any]]) -> None:
        self.inner = inner

    def __call__(self, batch: list[dict[str, Any]]) -> dict[str, Any]:
        out = self.inner(batch)
        out[TokenCount.KEY] = torch.tensor([sum(len(b["input_ids"]) for b in batch), out["input_ids"].numel()])
        return out


def sharded_sample_loss(model: Any, examples: list[Example], pad_id: int, batch: int, packing: bool) -> list[float]:
    """Per-sample losses, the work split over all processes (each runs the same number of forwards,
    which ZeRO-3's collective parameter gathers require)."""
    me, world = _world()
    if world == 1:
        return per_sample_loss(model, examples, pad_id, batch, packing)
    share = -(-len(examples) // world)
    mine = examples[me::world]
    padded = mine + [examples[0]] * (share - len(mine))
    losses = per_sample_loss(model, padded, pad_id, batch, packing)[: len(mine)]
    gathered: list[Any] = [None] * world
    torch.distributed.all_gather_object(gathered, losses)
    out = [0.0] * len(examples)
    for r, part in enumerate(gathered):
        out[r::world] = part
    return out


class EpochEnd(TrainerCallback):  # type: ignore[misc]
    """After each epoch's last step: every sample's loss with its corruption flag, written by the main
    process to `work/sample_loss/epoch_N.jsonl` (none without examples); then `snapshot(N)` when given.
    At the step's end, not at `on_epoch_end`: the Trainer saves a checkpoint that falls on the epoch's
    last step before `on_epoch_end`, and a run resumed from it never ends that epoch."""

    def __init__(self, cfg: TrainConfig, examples: list[Example], pad_id: int, work: Path, main: bool,
                 snapshot: Callable[[int], None] | None = None) -> None:
        self.cfg, self.examples, self.pad_id, self.main, self.snapshot = cfg, examples, pad_id, main, snapshot
        self.folder = work / "sample_loss"
        self.folder.mkdir(parents=True, exist_ok=True)

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if not float(state.epoch or 0).is_integer() or signals.stop_requested():
            return
        epoch = round(state.epoch)
        losses = sharded_sample_loss(kw["model"], self.examples, self.pad_id, self.cfg.per_device_batch_size,
                                     self.cfg.packing) if self.examples else []
        if self.main and self.examples:
            rows = [json.dumps({"epoch": epoch, "id": e.id, "is_corrupted": e.is_corrupted, "loss": loss})
                    for e, loss in zip(self.examples, losses, strict=True)]
            (self.folder / f"epoch_{epoch}.jsonl").write_text("".join(r + "\n" for r in rows))
        if self.snapshot is not None:
            self.snapshot(epoch)


class FacoTrainer(Trainer):  # type: ignore[misc]
    """With `full_forward` false (one process, no DeepSpeed), logits only for labelled positions (the
    same loss, less work); wrapped models (DDP, DeepSpeed engines) go through their own forward."""

    def __init__(self, *args: Any, full_forward: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.full_forward = full_forward

    def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        TokenCount.add(self.callback_handler.callbacks, inputs)
        if return_outputs or self.full_forward:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        return response_only_loss(model, inputs, num_items_in_batch)
