"""Training throughput: the train stage (packing on) vs a plain transformers Trainer with dynamic
padding and vs TRL's SFTTrainer (packing, completion-only loss), the trainer a user would pick instead.

    .venv/bin/python benchmarks/train_throughput.py [--config configs/mini.yaml] [--ratio 0.5] [--set KEY=VALUE]

Same model, seed, data (the study's split, tokenized once by faco: response-only labels),
hyper-parameters, epochs and tokens per optimizer step (TRL packs into the same sequence length
and the same number of sequences per step as faco). Real (non-padding) tokens per second of
training steps (epoch-end work such as the per-sample loss log and checkpoints excluded). Last
line: ``ratio: <x> trl_ratio: <y>`` (faco over the plain Trainer, target on CPU >= 1.3; faco over
TRL, target >= 1.0), with all final training losses printed (target: within 5 %). Needs `trl`
(the dev extra).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from faco.config import Study, load_config
from faco.records import TrainRecord, read_jsonl
from faco.stages import corrupt, generate, ingest, train
from faco.training.data import encode
from faco.training.loop import batch_plan, pack_length, packed_batch_rows, warmup_steps
from faco.training.models import load_base

ROOT = Path(__file__).resolve().parents[1]


def step_clock() -> Any:
    from transformers import TrainerCallback

    class Clock(TrainerCallback):  # type: ignore[misc]
        """Seconds spent inside optimizer steps (forward, backward, update)."""

        def __init__(self) -> None:
            self.seconds = 0.0
            self.t0 = 0.0

        def on_step_begin(self, *a: Any, **k: Any) -> None:
            self.t0 = time.perf_counter()

        def on_step_end(self, *a: Any, **k: Any) -> None:
            self.seconds += time.perf_counter() - self.t0

    return Clock()


def plain_trainer(study: Study, records: list[TrainRecord], out: Path) -> tuple[float, float]:
    """The baseline: transformers Trainer, DataCollatorForSeq2Seq (pads each batch to its longest)."""
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments, set_seed

    cfg = study.train
    set_seed(cfg.seed)
    model, tok = load_base(cfg.model, [f"{r.prompt}\n{r.response}" for r in records], cfg.seed)
    rows = [{"input_ids": e.input_ids, "labels": e.labels} for e in (encode(r, tok, cfg.max_seq_len) for r in records)]
    per_device, accumulation = batch_plan(cfg, 1)
    args = TrainingArguments(
        output_dir=str(out), per_device_train_batch_size=per_device, gradient_accumulation_steps=accumulation,
        num_train_epochs=cfg.epochs, learning_rate=cfg.learning_rate, lr_scheduler_type=cfg.lr_scheduler_type,
        warmup_steps=warmup_steps(cfg, len(rows), per_device, accumulation, 1, cfg.epochs),
        weight_decay=cfg.weight_decay, logging_steps=1, save_strategy="no",
        report_to=[], seed=cfg.seed, data_seed=cfg.seed, use_cpu=not torch.cuda.is_available(),
        remove_unused_columns=False,
    )
    clock = step_clock()
    trainer = Trainer(model=model, args=args, train_dataset=rows, callbacks=[clock],
                      data_collator=DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=-100))
    result = trainer.train()
    real = sum(len(r["input_ids"]) for r in rows) * cfg.epochs
    return real / clock.seconds, result.training_loss


def trl_sft(study: Study, records: list[TrainRecord], out: Path) -> tuple[float, float]:
    """TRL's SFTTrainer: best-fit-decreasing packing (padding-free), loss on the completion only."""
    from datasets import Dataset
    from transformers import set_seed
    from trl import SFTConfig, SFTTrainer

    cfg = study.train
    set_seed(cfg.seed)
    model, tok = load_base(cfg.model, [f"{r.prompt}\n{r.response}" for r in records], cfg.seed)
    examples = [encode(r, tok, cfg.max_seq_len) for r in records]
    data = Dataset.from_list([{"input_ids": e.input_ids, "completion_mask": [int(x != -100) for x in e.labels]}
                              for e in examples])
    lengths = [len(e.input_ids) for e in examples]
    per_device, accumulation = batch_plan(cfg, 1, packed_batch_rows(cfg, lengths, 1))
    rows = len(lengths)  # an upper bound for the warm-up count; TRL's own packing decides the rows
    args = SFTConfig(
        output_dir=str(out), packing=True, packing_strategy="bfd", max_length=pack_length(cfg),
        completion_only_loss=True, per_device_train_batch_size=per_device, gradient_accumulation_steps=accumulation,
        num_train_epochs=cfg.epochs, learning_rate=cfg.learning_rate, lr_scheduler_type=cfg.lr_scheduler_type,
        warmup_steps=warmup_steps(cfg, rows, per_device, accumulation, 1, cfg.epochs),
        weight_decay=cfg.weight_decay, logging_steps=1, save_strategy="no", report_to="none", seed=cfg.seed,
        data_seed=cfg.seed, use_cpu=not torch.cuda.is_available(), dataloader_num_workers=0,
    )
    clock = step_clock()
    trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tok, callbacks=[clock])
    result = trainer.train()
    return sum(lengths) * cfg.epochs / clock.seconds, result.training_loss


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--config", default=str(ROOT / "configs" / "mini.yaml"))
    p.add_argument("--ratio", type=float, default=0.5)
    p.add_argument("--set", action="append", default=[], help="config override, e.g. ingest.per_source_cap=6")
    a = p.parse_args()
    study = load_config(a.config, a.set)
    data = study.model_dump(mode="json")
    data["train"]["packing"] = True
    ours = Study.model_validate(data)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ingest.run(study, work / "sources")
        generate.run(study, work / "sources", work / "pairs")
        splits = corrupt.run(study, work / "pairs", work / "splits")
        records = list(read_jsonl(corrupt.split_path(splits, a.ratio), TrainRecord))
        clock = step_clock()
        train.run(ours, splits, a.ratio, work / "model", callbacks=[clock])
        stats = json.loads((work / "model" / "train_stats.json").read_text())
        ours_tps = stats["real_tokens"] / clock.seconds
        base_tps, base_loss = plain_trainer(study, records, work / "plain")
        trl_tps, trl_loss = trl_sft(study, records, work / "trl")
    loss = stats["train_loss"]
    print(f"examples: {stats['examples']} real_token_fraction: {stats['real_token_fraction']} "
          f"sequences: {stats['sequences']}")
    print(f"faco train (packing): {ours_tps:.1f} real tok/s, loss {loss:.4f}")
    print(f"plain Trainer (dynamic padding): {base_tps:.1f} real tok/s, loss {base_loss:.4f}")
    print(f"TRL SFTTrainer (bfd packing, completion-only loss): {trl_tps:.1f} real tok/s, loss {trl_loss:.4f}")
    print(f"loss difference: plain {abs(loss - base_loss) / base_loss:.2%}, TRL {abs(loss - trl_loss) / trl_loss:.2%}")
    print(f"ratio: {ours_tps / base_tps:.2f} trl_ratio: {ours_tps / trl_tps:.2f}")


if __name__ == "__main__":
    main()
