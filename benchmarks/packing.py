"""Sequence packing: share of real tokens in the batches the train stage feeds the model.

    .venv/bin/python benchmarks/packing.py [--config configs/mini.yaml] [--ratio 0.5]

Builds the study's training split (ingest, generate, corrupt; seconds), tokenizes it with the
study's model, and counts real tokens vs token slots in the batches of one epoch, packed (as
`train.packing: true` makes them) and padded to the longest example per batch (the baseline).
Last line: ``real_token_fraction: <x> padded_baseline: <y>`` (target: x >= 0.95).
"""

from __future__ import annotations

import argparse
import random
import tempfile
from pathlib import Path

from faco.config import Study, load_config
from faco.records import TrainRecord, read_jsonl
from faco.stages import corrupt, generate, ingest
from faco.training.data import Collator, PackedCollator, encode, pack, packed_row
from faco.training.loop import batch_plan, pack_length, packed_batch_rows
from faco.training.models import load_base

ROOT = Path(__file__).resolve().parents[1]


def split_records(study: Study, ratio: float, work: Path) -> list[TrainRecord]:
    ingest.run(study, work / "sources")
    generate.run(study, work / "sources", work / "pairs")
    corrupt.run(study, work / "pairs", work / "splits")
    return list(read_jsonl(corrupt.split_path(work / "splits", ratio), TrainRecord))


def measure(batches: list[list[dict]], collate: object) -> float:
    real = slots = 0
    for batch in batches:
        out = collate(batch)  # type: ignore[operator]
        real += sum(len(b["input_ids"]) for b in batch)
        slots += out["input_ids"].numel()
    return real / slots


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--config", default=str(ROOT / "configs" / "mini.yaml"))
    p.add_argument("--ratio", type=float, default=0.5)
    a = p.parse_args()
    study = load_config(a.config)
    cfg = study.train
    with tempfile.TemporaryDirectory() as tmp:
        records = split_records(study, a.ratio, Path(tmp))
    _, tok = load_base(cfg.model, [f"{r.prompt}\n{r.response}" for r in records], cfg.seed)
    examples = [encode(r, tok, cfg.max_seq_len) for r in records]
    lengths = [len(e.input_ids) for e in examples]
    rng = random.Random(cfg.seed)
    plain = [{"input_ids": e.input_ids, "labels": e.labels} for e in examples]
    rng.shuffle(plain)
    per_device, _ = batch_plan(cfg, 1)
    padded = measure([plain[i : i + per_device] for i in range(0, len(plain), per_device)], Collator(tok.pad_token_id))
    rows = [packed_row([examples[i] for i in row]) for row in pack(lengths, pack_length(cfg))]
    rng.shuffle(rows)
    rows_per_device, _ = batch_plan(cfg, 1, packed_batch_rows(cfg, lengths, 1))
    packed = measure([rows[i : i + rows_per_device] for i in range(0, len(rows), rows_per_device)],
                     PackedCollator(tok.pad_token_id))
    print(f"examples: {len(examples)} tokens: {sum(lengths)} max_seq_len: {cfg.max_seq_len} "
          f"pack_length: {pack_length(cfg)} packed sequences: {len(rows)} (batch {rows_per_device}) "
          f"padded batches of {per_device}")
    print(f"real_token_fraction: {packed:.4f} padded_baseline: {padded:.4f}")


if __name__ == "__main__":
    main()
