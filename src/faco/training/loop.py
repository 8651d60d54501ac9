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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from faco import ds_config, signals
from faco.config import TrainConfig
from faco.errors import ConfigError, FacoError
from faco.progress import log
from faco.records import TrainRecord
from faco.training.callbacks import StopOnTerm, TokenCount, resumed_tokens
from faco.training.checkpoints import count_params, count_saved_params, last_checkpoint, save_model, tied_keys
from faco.training.data import (
    Collator,
    Example,
    PackedCollator,
    encode,
    pack,
    packed_row,
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


def _deepspeed_setup(cfg: TrainConfig) -> str | None:
    """The DeepSpeed config file of the run, if any, with a process group's variables set when alone."""
    ds_path, zero_stage = deepspeed_config(cfg)
    if ds_path:
        _single_process_env()
    if cfg.lora is not None and zero_stage == 3:
        raise FacoError("train.lora with a ZeRO-3 DeepSpeed config is not supported: use train.deepspeed: zero2")
    return ds_path


def _arguments(cfg: TrainConfig, work: Path, epochs: int, per_device: int, accumulation: int, rows: int) -> Any:
    """The run's TrainingArguments; one line naming the refusal when transformers refuses them."""
    from transformers import TrainingArguments

    kwargs = trainer_arguments(cfg, work / "trainer", epochs, per_device, accumulation,
                               warmup_steps(cfg, rows, per_device, accumulation, world_size(), epochs))
    try:
        return TrainingArguments(**kwargs)
    except (TypeError, ValueError) as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise FacoError(f"train: transformers TrainingArguments refused the settings: {msg}") from None


@dataclass
class _Run:
    """What a run trains: the model and tokenizer, the encoded examples, the rows the Trainer batches
    (packed or one example each) and the batch plan its TrainingArguments hold."""

    model: Any
    tok: Any
    examples: list[Example]
    rows: list[dict[str, list[int]]]
    per_device: int
    accumulation: int
    args: Any


def _prepare(cfg: TrainConfig, records: list[TrainRecord], load: Loader, work: Path, epochs: int,
             callbacks: Sequence[Any] = ()) -> _Run:
    """Load, encode and plan. The TrainingArguments exist before the model loads (under ZeRO-3 the
    model is then partitioned while it loads); packing, whose plan needs the token lengths, replaces
    them once the tokenizer has encoded the rows. A callback with a `tokenizer` attribute gets the
    run's (one that measures samples itself, `faco.training.dynamics`)."""
    world = world_size()
    per_device, accumulation = batch_plan(cfg, world)
    args = _arguments(cfg, work, epochs, per_device, accumulation, len(records))
    model, tok = load()
    for cb in callbacks:
        if hasattr(cb, "tokenizer"):
            cb.tokenizer = tok
    check_context(cfg, model)
    if cfg.lora is not None:
        from faco.training.models import add_lora

        model = add_lora(model, cfg.lora)
    examples = [encode(r, tok, cfg.max_seq_len) for r in records]
    if not cfg.packing:
        rows = [{"input_ids": e.input_ids, "labels": e.labels} for e in examples]
        return _Run(model, tok, examples, rows, per_device, accumulation, args)
    lengths = [len(e.input_ids) for e in examples]
    rows = [packed_row([examples[i] for i in row]) for row in pack(lengths, pack_length(cfg))]
    per_device, accumulation = batch_plan(cfg, world, packed_batch_rows(cfg, lengths, world))
    args = _arguments(cfg, work, epochs, per_device, accumulation, len(rows))
    return _Run(model, tok, examples, rows, per_device, accumulation, args)


def _write_logs(trainer: Any, out: Path, work: Path, epochs: int) -> list[dict[str, Any]]:
    """`loss.jsonl` (every logged step) and `sample_loss.jsonl` (epochs 1..`epochs`; none with 0) in
    `out`; the steps."""
    steps = [e for e in trainer.state.log_history if "loss" in e]
    with (out / "loss.jsonl").open("w") as fh:
        for entry in steps:
            fh.write(json.dumps({"step": entry["step"], "epoch": entry["epoch"], "loss": entry["loss"],
                                 "learning_rate": entry.get("learning_rate")}) + "\n")
    if not epochs:
        return steps
    with (out / "sample_loss.jsonl").open("w") as fh:
        for epoch in range(1, epochs + 1):
            fh.write((work / "sample_loss" / f"epoch_{epoch}.jsonl").read_text())
    return steps


def _stats(cfg: TrainConfig, run: _Run, trainer: Any, result: Any, steps: list[dict[str, Any]], epochs: int,
           seconds: float, last: Path | None, parameters: int) -> dict[str, Any]:
    """The training statistics recorded in the model's manifest (`meta.train`)."""
    tokens = TokenCount.find(trainer.callback_handler.callbacks)
    # the mean over every step, also those before a resume (the Trainer's own covers the resumed ones)
    train_loss = (sum(e["loss"] for e in steps) / len(steps) if steps and len(steps) == trainer.state.global_step
                  else result.training_loss)
    log(f"train: {len(run.examples)} examples x {epochs} epochs in {seconds:.0f}s, loss {train_loss:.4f}")
    return {
        "examples": len(run.examples), "epochs": epochs, "precision": precision(cfg), "world_size": world_size(),
        "per_device_batch_size": run.per_device, "gradient_accumulation_steps": run.accumulation,
        "global_batch_size": cfg.global_batch_size, "packing": cfg.packing, "sequences": len(run.rows),
        "lora": cfg.lora is not None,
        "deepspeed_zero_stage": deepspeed_config(cfg)[1], "parameters": parameters,
        "resumed_from": last.name if last else None,
        "train_loss": train_loss, "final_step_loss": steps[-1]["loss"] if steps else None,
        "seconds": round(seconds, 2),
        "real_tokens": tokens.real, "token_slots": tokens.slots,
        "real_token_fraction": round(tokens.real / tokens.slots, 4) if tokens.slots else None,
        "tokens_per_second": round(tokens.session_real / seconds, 1) if seconds else None,
    }


def train(
    cfg: TrainConfig,
    records: list[TrainRecord],
    load: Loader, out: Path, work: Path, epochs: int | None = None, resume: bool = True,
    callbacks: Sequence[Any] = (), snapshots_in_out: bool = True, sample_losses: bool = True,
) -> dict[str, Any]:
    """Fine-tune the model `load()` returns on `records`.

    Writes `model/`, `loss.jsonl`, `sample_loss.jsonl` (and, with `save_every_epoch`, the epoch
    snapshots `checkpoints/epoch_N/` unless `snapshots_in_out` is false: then they stay in
    `work/epochs/`) under `out` on the main process; resumes from the last Trainer checkpoint in
    `work` when `resume` is true. Returns the training statistics. `sample_losses=False` skips the
    per-epoch sample losses (the audit's recorder measures them itself, `faco.training.dynamics`).
    """
    from transformers import set_seed

    from faco.training.trainer import Counting, EpochEnd, FacoTrainer, Rows

    ds_path = _deepspeed_setup(cfg)
    set_seed(cfg.seed)
    n_epochs, main = epochs or cfg.epochs, rank() == 0
    work.mkdir(parents=True, exist_ok=True)
    if not resume:
        shutil.rmtree(work / "trainer", ignore_errors=True)
    run = _prepare(cfg, records, load, work, n_epochs, callbacks)
    expected_params, tied = count_params(run.model), tied_keys(run.model)

    def snapshot(epoch: int) -> None:
        save_model(trainer, run.tok, work / "epochs" / f"epoch_{epoch}", expected_params, main, tied)

    collate = Counting(PackedCollator(run.tok.pad_token_id) if cfg.packing else Collator(run.tok.pad_token_id))
    tokens = TokenCount()
    epoch_end = EpochEnd(cfg, run.examples if sample_losses else [], run.tok.pad_token_id, work, main,
                         snapshot if cfg.save_every_epoch else None)
    trainer = FacoTrainer(model=run.model, args=run.args, train_dataset=Rows(run.rows), data_collator=collate,
                          callbacks=[epoch_end, tokens, StopOnTerm(), *callbacks],
                          full_forward=world_size() > 1 or ds_path is not None)
    last = last_checkpoint(work / "trainer", main) if resume else None
    if last:
        log(f"train: resuming from {last}")
        tokens.restore(resumed_tokens(last))
    start = time.perf_counter()
    with signals.safe_points():
        result = trainer.train(resume_from_checkpoint=str(last) if last else None)
    signals.raise_if_requested()  # SIGTERM stopped training early: its last whole checkpoint is kept
    seconds = time.perf_counter() - start
    save_model(trainer, run.tok, out / "model", expected_params, main, tied)
    if ds_path:  # transformers keeps the Trainer's ZeRO settings process-wide: a later stage in this process
        from transformers.integrations.deepspeed import unset_hf_deepspeed_config  # (faco study's evaluate)
        unset_hf_deepspeed_config()  # would load its model as ZeRO-3 partitions and refuse a device_map
    if not main:
        return {}
    steps = _write_logs(trainer, out, work, n_epochs if sample_losses else 0)
    if cfg.save_every_epoch and snapshots_in_out:
        shutil.copytree(work / "epochs", out / "checkpoints")
    return _stats(cfg, run, trainer, result, steps, n_epochs, seconds, last, count_saved_params(out / "model", tied))
