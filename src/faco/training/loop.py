"""The fine-tuning loop: transformers Trainer (DeepSpeed when configured), logs per step and per sample.

Work in progress lives in a work directory outside the artifact (resumable Trainer checkpoints,
per-epoch sample losses and model snapshots), so that a killed run continues where it stopped;
the artifact files are assembled from it at the end.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from faco import ds_config, signals
from faco.config import TrainConfig
from faco.errors import ConfigError, FacoError
from faco.progress import log
from faco.records import TrainRecord
from faco.training.checkpoints import count_params, count_saved_params, last_checkpoint, save_model, tied_keys
from faco.training.data import (
    Collator,
    Example,
    PackedCollator,
    encode,
    pack,
    packed_row,
    per_sample_loss,
    response_only_loss,
)

Loader = Callable[[], tuple[Any, Any]]


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def batch_plan(cfg: TrainConfig, world: int, rows: int | None = None) -> tuple[int, int]:
    """(per-device batch, gradient accumulation) that make the global batch on `world` processes.

    The global batch is `global_batch_size` examples, or with packing `rows` packed sequences.
    The per-device batch is `per_device_batch_size`, or less when a process's share is smaller.
    """
    total = rows or cfg.global_batch_size
    if total % world:
        raise FacoError(f"train.global_batch_size ({total}) is not divisible by the world size ({world})")
    share = total // world
    per_device = min(cfg.per_device_batch_size, share)
    if rows:  # a derived size: take the largest per-device batch that divides it
        per_device = max(d for d in range(1, per_device + 1) if share % d == 0)
    if share % per_device:
        raise FacoError(
            f"train.global_batch_size ({total}) is not divisible by per_device_batch_size "
            f"({per_device}) x world size ({world})"
        )
    return per_device, share // per_device


def pack_length(cfg: TrainConfig) -> int:
    """Tokens per packed sequence: `pack_length`, by default 3 x `max_seq_len` (room for several examples)."""
    return cfg.pack_length or 3 * cfg.max_seq_len


def packed_batch_rows(cfg: TrainConfig, lengths: list[int], world: int) -> int:
    """Packed sequences per optimizer step that carry about `global_batch_size` examples' tokens
    (rounded up to a multiple of the world size), so packing keeps the recipe's tokens per step."""
    mean = sum(lengths) / max(len(lengths), 1)
    rows = max(1, math.ceil(cfg.global_batch_size * mean / pack_length(cfg) - 1e-9))
    return math.ceil(rows / world) * world


def accumulation_steps(cfg: TrainConfig, world: int) -> int:
    """Gradient accumulation that makes `global_batch_size` from per-device batch x world size."""
    return batch_plan(cfg, world)[1]


def precision(cfg: TrainConfig) -> str:
    """bf16 on GPUs, fp32 on CPUs (which lack fast bf16) unless the config insists."""
    if cfg.precision != "auto":
        return cfg.precision
    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"


def deepspeed_config(cfg: TrainConfig) -> tuple[str | None, int]:
    """The DeepSpeed config file `train.deepspeed` names (shipped by name, or a path) and its ZeRO stage."""
    if cfg.deepspeed is None:
        return None, 0
    try:
        path = ds_config.resolve(cfg.deepspeed)
        return str(path), ds_config.zero_stage(path)
    except ValueError as e:
        raise ConfigError(f"train.deepspeed: {e}") from None


def warmup_steps(cfg: TrainConfig, rows: int, per_device: int, accumulation: int, world: int, epochs: int) -> int:
    """Warm-up optimizer steps: `warmup_ratio` of all steps, rounded up, as the Trainer counts them
    (an integer, so no transformers version reads it differently)."""
    batches = math.ceil(rows / (per_device * world))  # per process and epoch
    total = epochs * math.ceil(batches / accumulation)
    return math.ceil(cfg.warmup_ratio * total - 1e-9)


def trainer_arguments(cfg: TrainConfig, output_dir: Path, epochs: int, per_device: int, accumulation: int,
                      warmup: int) -> dict[str, Any]:
    """The TrainingArguments of a run: the config's TrainingArguments-named keys, faco's fixed
    settings (config.FACO_TRAINER_ARGS), then `train.trainer_args` passed through."""
    prec = precision(cfg)
    return dict(
        output_dir=str(output_dir),
        num_train_epochs=epochs,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler_type,
        warmup_steps=warmup,
        weight_decay=cfg.weight_decay,
        activation_checkpointing=cfg.activation_checkpointing,
        gradient_checkpointing=None,  # the deprecated alias of activation_checkpointing
        max_grad_norm=cfg.max_grad_norm,
        optim=cfg.optim,
        report_to=cfg.report_to,
        per_device_train_batch_size=per_device,
        gradient_accumulation_steps=accumulation,
        logging_steps=1,
        save_strategy="steps" if cfg.checkpoint_steps else "epoch",
        save_steps=cfg.checkpoint_steps or 500,
        save_total_limit=1,
        seed=cfg.seed,
        data_seed=cfg.seed,
        use_cpu=not torch.cuda.is_available(),
        bf16=prec == "bf16",
        fp16=prec == "fp16",
        deepspeed=deepspeed_config(cfg)[0],
        dataloader_num_workers=0,
        remove_unused_columns=False,
        disable_tqdm=rank() != 0,
        **cfg.trainer_args,
    )


def _single_process_env() -> None:
    """DeepSpeed needs a process group even alone: set the variables a launcher would."""
    if "RANK" in os.environ:
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))


class _Rows(torch.utils.data.Dataset):
    def __init__(self, rows: list[dict[str, list[int]]]) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, list[int]]:
        return self.rows[i]


class _Counting:
    """Wraps a collator; tags each batch with its real and processed token slots (`TokenCount` adds
    them up as the batches are trained on)."""

    def __init__(self, inner: Callable[[list[dict[str, Any]]], dict[str, Any]], key: str) -> None:
        self.inner = inner
        self.key = key

    def __call__(self, batch: list[dict[str, Any]]) -> dict[str, Any]:
        out = self.inner(batch)
        out[self.key] = torch.tensor([sum(len(b["input_ids"]) for b in batch), out["input_ids"].numel()])
        return out


def _sharded_sample_loss(model: Any, examples: list[Example], pad_id: int, batch: int, packing: bool) -> list[float]:
    """Per-sample losses, the work split over all processes (each runs the same number of forwards,
    which ZeRO-3's collective parameter gathers require)."""
    world = world_size()
    if world == 1 or not torch.distributed.is_initialized():
        return per_sample_loss(model, examples, pad_id, batch, packing)
    me = rank()
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


def check_context(cfg: TrainConfig, model: Any) -> None:
    """Refuse sequences longer than the model's context (its max_position_embeddings)."""
    limit = getattr(model.config, "max_position_embeddings", None)
    lengths = {"max_seq_len": cfg.max_seq_len, **({"pack_length": pack_length(cfg)} if cfg.packing else {})}
    for key, length in lengths.items():
        if limit and length > limit:
            raise ConfigError(f"train.{key}: {length} is above the model's context of {limit} tokens "
                              "(max_position_embeddings)")


def work_dir_for(out: Path) -> Path:
    """Default work directory of a train output: a hidden sibling, stable across restarts."""
    return out.parent / f".{out.name}.work"


def train(
    cfg: TrainConfig,
    records: list[TrainRecord],
    load: Loader,
    out: Path,
    work: Path,
    epochs: int | None = None,
    resume: bool = True,
    callbacks: Sequence[Any] = (),
    snapshots_in_out: bool = True,
) -> dict[str, Any]:
    """Fine-tune the model `load()` returns on `records`.

    Writes `model/`, `loss.jsonl`, `sample_loss.jsonl` (and, with `save_every_epoch`, the epoch
    snapshots `checkpoints/epoch_N/` unless `snapshots_in_out` is false: then they stay in
    `work/epochs/`) under `out` on the main process; resumes from the last Trainer checkpoint in
    `work` when `resume` is true. Returns the training statistics.
    """
    from transformers import Trainer, TrainerCallback, TrainingArguments, set_seed

    from faco.training.callbacks import StopOnTerm, TokenCount, resumed_tokens

    ds_path, zero_stage = deepspeed_config(cfg)
    if ds_path:
        _single_process_env()
    if cfg.lora is not None and zero_stage == 3:
        raise FacoError("train.lora with a ZeRO-3 DeepSpeed config is not supported: use train.deepspeed: zero2")
    set_seed(cfg.seed)
    prec = precision(cfg)
    world = world_size()
    n_epochs = epochs or cfg.epochs
    main = rank() == 0
    work.mkdir(parents=True, exist_ok=True)
    if not resume:
        shutil.rmtree(work / "trainer", ignore_errors=True)
    def arguments(per_device: int, accumulation: int, rows: int) -> Any:
        kwargs = trainer_arguments(cfg, work / "trainer", n_epochs, per_device, accumulation,
                                   warmup_steps(cfg, rows, per_device, accumulation, world, n_epochs))
        try:
            return TrainingArguments(**kwargs)
        except (TypeError, ValueError) as e:
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise FacoError(f"train: transformers TrainingArguments refused the settings: {msg}") from None

    per_device, accumulation = batch_plan(cfg, world)
    args = arguments(per_device, accumulation, len(records))  # before loading: ZeRO-3 then partitions while loading
    model, tok = load()
    check_context(cfg, model)
    if cfg.lora is not None:
        from faco.training.models import add_lora

        model = add_lora(model, cfg.lora)
    expected_params, tied = count_params(model), tied_keys(model)
    examples = [encode(r, tok, cfg.max_seq_len) for r in records]
    if cfg.packing:
        lengths = [len(e.input_ids) for e in examples]
        rows = [packed_row([examples[i] for i in row]) for row in pack(lengths, pack_length(cfg))]
        per_device, accumulation = batch_plan(cfg, world, packed_batch_rows(cfg, lengths, world))
        args = arguments(per_device, accumulation, len(rows))
    else:
        rows = [{"input_ids": e.input_ids, "labels": e.labels} for e in examples]
    (work / "sample_loss").mkdir(exist_ok=True)
    holder: dict[str, Any] = {}

    class EpochEnd(TrainerCallback):  # type: ignore[misc]
        """After each epoch's last step: every sample's loss with its corruption flag; a model snapshot
        if asked. At the step's end, not at `on_epoch_end`: the Trainer saves a checkpoint that falls on
        the epoch's last step before `on_epoch_end`, and a run resumed from it never ends that epoch."""

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if not float(state.epoch or 0).is_integer() or signals.stop_requested():
                return
            epoch = round(state.epoch)
            losses = _sharded_sample_loss(kw["model"], examples, tok.pad_token_id, cfg.per_device_batch_size,
                                          cfg.packing)
            if main:
                rows = [json.dumps({"epoch": epoch, "id": e.id, "is_corrupted": e.is_corrupted, "loss": loss})
                        for e, loss in zip(examples, losses, strict=True)]
                (work / "sample_loss" / f"epoch_{epoch}.jsonl").write_text("".join(r + "\n" for r in rows))
            if cfg.save_every_epoch:
                save_model(holder["trainer"], tok, work / "epochs" / f"epoch_{epoch}", expected_params, main, tied)

    class FacoTrainer(Trainer):  # type: ignore[misc]
        """Alone and without DeepSpeed, logits only for labelled positions (the same loss, less work);
        wrapped models (DDP, DeepSpeed engines) go through their own forward."""

        def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                         num_items_in_batch: Any = None) -> Any:
            TokenCount.add(self.callback_handler.callbacks, inputs)
            if return_outputs or world > 1 or ds_path:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            return response_only_loss(model, inputs, num_items_in_batch)

    collate = _Counting(PackedCollator(tok.pad_token_id) if cfg.packing else Collator(tok.pad_token_id),
                        TokenCount.KEY)
    tokens = TokenCount()
    trainer = FacoTrainer(model=model, args=args, train_dataset=_Rows(rows), data_collator=collate,
                          callbacks=[EpochEnd(), tokens, StopOnTerm(), *callbacks])
    holder["trainer"] = trainer
    last = last_checkpoint(work / "trainer", main) if resume else None
    if last:
        log(f"train: resuming from {last}")
        tokens.restore(resumed_tokens(last))
    start = time.perf_counter()
    with signals.safe_points():
        result = trainer.train(resume_from_checkpoint=str(last) if last else None)
    signals.raise_if_requested()  # SIGTERM stopped training early: its last whole checkpoint is kept
    seconds = time.perf_counter() - start
    tokens = TokenCount.find(trainer.callback_handler.callbacks)
    save_model(trainer, tok, out / "model", expected_params, main, tied)
    if ds_path:  # transformers keeps the Trainer's ZeRO settings process-wide: a later stage in this process
        from transformers.integrations.deepspeed import unset_hf_deepspeed_config  # (faco study's evaluate)

        unset_hf_deepspeed_config()  # would load its model as ZeRO-3 partitions and refuse a device_map
    if not main:
        return {}
    steps = [e for e in trainer.state.log_history if "loss" in e]
    # the mean over every step, also those before a resume (the Trainer's own covers the resumed ones)
    train_loss = (sum(e["loss"] for e in steps) / len(steps) if steps and len(steps) == trainer.state.global_step
                  else result.training_loss)
    with (out / "loss.jsonl").open("w") as fh:
        for entry in steps:
            fh.write(json.dumps({"step": entry["step"], "epoch": entry["epoch"], "loss": entry["loss"],
                                 "learning_rate": entry.get("learning_rate")}) + "\n")
    with (out / "sample_loss.jsonl").open("w") as fh:
        for epoch in range(1, n_epochs + 1):
            fh.write((work / "sample_loss" / f"epoch_{epoch}.jsonl").read_text())
    if cfg.save_every_epoch and snapshots_in_out:
        shutil.copytree(work / "epochs", out / "checkpoints")
    on_disk = count_saved_params(out / "model", tied)
    stats = {
        "examples": len(examples), "epochs": n_epochs, "precision": prec, "world_size": world,
        "per_device_batch_size": per_device, "gradient_accumulation_steps": accumulation,
        "global_batch_size": cfg.global_batch_size, "packing": cfg.packing, "sequences": len(rows),
        "lora": cfg.lora is not None,
        "deepspeed_zero_stage": zero_stage, "parameters": on_disk,
        "resumed_from": last.name if last else None,
        "train_loss": train_loss, "final_step_loss": steps[-1]["loss"] if steps else None,
        "seconds": round(seconds, 2),
        "real_tokens": tokens.real, "token_slots": tokens.slots,
        "real_token_fraction": round(tokens.real / tokens.slots, 4) if tokens.slots else None,
        "tokens_per_second": round(tokens.session_real / seconds, 1) if seconds else None,
    }
    log(f"train: {len(examples)} examples x {n_epochs} epochs in {seconds:.0f}s, loss {train_loss:.4f}")
    return stats
