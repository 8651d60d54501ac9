"""The fine-tuning loop: transformers Trainer (DeepSpeed when configured), logs per step and per sample."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import torch

from faco.config import TrainConfig
from faco.errors import FacoError
from faco.progress import log
from faco.records import TrainRecord
from faco.training.data import Collator, Example, encode, per_sample_loss


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def accumulation_steps(cfg: TrainConfig, world: int) -> int:
    """Gradient accumulation that makes `global_batch_size` from per-device batch x world size."""
    per_step = cfg.per_device_batch_size * world
    if cfg.global_batch_size % per_step:
        raise FacoError(
            f"train.global_batch_size ({cfg.global_batch_size}) is not divisible by per_device_batch_size "
            f"({cfg.per_device_batch_size}) x world size ({world})"
        )
    return cfg.global_batch_size // per_step


def precision(cfg: TrainConfig) -> str:
    """bf16 on GPUs, fp32 on CPUs (which lack fast bf16) unless the config insists."""
    if cfg.precision != "auto":
        return cfg.precision
    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"


class _Rows(torch.utils.data.Dataset):
    def __init__(self, examples: list[Example]) -> None:
        self.examples = examples

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> dict[str, Any]:
        e = self.examples[i]
        return {"input_ids": e.input_ids, "labels": e.labels}


def train(
    cfg: TrainConfig, records: list[TrainRecord], model: Any, tok: Any, out: Path, epochs: int | None = None
) -> dict[str, Any]:
    """Fine-tune `model` on `records`; writes `model/`, `loss.jsonl`, `sample_loss.jsonl` under `out`."""
    from transformers import Trainer, TrainerCallback, TrainingArguments, set_seed

    set_seed(cfg.seed)
    examples = [encode(r, tok, cfg.max_seq_len) for r in records]
    prec = precision(cfg)
    world = world_size()
    n_epochs = epochs or cfg.epochs
    sample_log = (out / "sample_loss.jsonl").open("w")

    class SampleLoss(TrainerCallback):  # type: ignore[misc]
        """After each epoch, log every training sample's loss with its corruption flag."""

        def on_epoch_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if not state.is_world_process_zero:
                return
            losses = per_sample_loss(kw["model"], examples, tok.pad_token_id, cfg.per_device_batch_size)
            epoch = round(state.epoch or 0)
            for e, loss in zip(examples, losses, strict=True):
                sample_log.write(json.dumps({"epoch": epoch, "id": e.id, "is_corrupted": e.is_corrupted,
                                             "loss": loss}) + "\n")
            sample_log.flush()

    args = TrainingArguments(
        output_dir=str(out / "trainer"),
        per_device_train_batch_size=cfg.per_device_batch_size,
        gradient_accumulation_steps=accumulation_steps(cfg, world),
        num_train_epochs=n_epochs,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler,
        warmup_steps=cfg.warmup_ratio,  # a float < 1 is a ratio of total steps (transformers 5)
        weight_decay=cfg.weight_decay,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        seed=cfg.seed,
        data_seed=cfg.seed,
        bf16=prec == "bf16",
        fp16=prec == "fp16",
        use_cpu=not torch.cuda.is_available(),
        deepspeed=cfg.deepspeed,
        dataloader_num_workers=0,
        remove_unused_columns=False,
        disable_tqdm=False,
    )
    trainer = Trainer(model=model, args=args, train_dataset=_Rows(examples),
                      data_collator=Collator(tok.pad_token_id), callbacks=[SampleLoss()])
    start = time.perf_counter()
    result = trainer.train()
    seconds = time.perf_counter() - start
    sample_log.close()
    with (out / "loss.jsonl").open("w") as fh:
        for entry in trainer.state.log_history:
            if "loss" in entry:
                fh.write(json.dumps({"step": entry["step"], "epoch": entry["epoch"], "loss": entry["loss"],
                                     "learning_rate": entry.get("learning_rate")}) + "\n")
    trainer.save_model(str(out / "model"))
    tok.save_pretrained(out / "model")
    import shutil

    shutil.rmtree(out / "trainer", ignore_errors=True)
    real_tokens = sum(sum(1 for x in e.input_ids) for e in examples) * n_epochs
    stats = {
        "examples": len(examples), "epochs": n_epochs, "precision": prec, "world_size": world,
        "train_loss": result.training_loss, "seconds": round(seconds, 2),
        "tokens_per_second": round(real_tokens / seconds, 1) if seconds else None,
    }
    log(f"train: {len(examples)} examples x {n_epochs} epochs in {seconds:.0f}s, loss {result.training_loss:.4f}")
    return stats
