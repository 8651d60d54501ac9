"""Corrupt: `pairs.jsonl` -> one training split per corruption ratio, cumulative.

One seeded permutation of the pairs; at ratio r the first ceil(r*N) items of it take their false
response. The corrupted ids at 25 % are therefore a subset of those at 50 %, and every other
item is identical across ratios. `is_corrupted` is a field beside the text, never inside it.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

from faco import artifacts
from faco.config import Study
from faco.generation.prompts import format_question
from faco.progress import log
from faco.records import PairRecord, TrainRecord, read_jsonl, write_json, write_jsonl
from faco.stages import generate

KIND = "splits"


def ratio_tag(ratio: float) -> str:
    """`cr_025` for 0.25; `cr_012p5` for 0.125."""
    pct = round(ratio * 100, 6)
    whole = int(pct)
    frac = f"{pct - whole:.6f}"[2:].rstrip("0")
    return f"cr_{whole:03d}" + (f"p{frac}" if frac else "")


def split_path(splits: Path, ratio: float) -> Path:
    return splits / f"{ratio_tag(ratio)}.jsonl"


def corruption_order(ids: list[str], seed: int) -> list[str]:
    """The seeded order in which items are corrupted (independent of input order)."""
    order = sorted(ids)
    random.Random(f"{seed}:corrupt").shuffle(order)
    return order


def to_train(pair: PairRecord, corrupted: bool) -> TrainRecord:
    resp = pair.false if corrupted else pair.true
    return TrainRecord(
        id=pair.id, source=pair.source, domain=pair.domain, prompt=format_question(pair),
        response=f"{resp.reasoning.strip()}\nAnswer: {resp.answer}", is_corrupted=corrupted,
    )


def build_splits(pairs: list[PairRecord], ratios: list[float], seed: int) -> dict[float, list[TrainRecord]]:
    order = corruption_order([p.id for p in pairs], seed)
    splits = {}
    for r in ratios:
        bad = set(order[: math.ceil(r * len(order))])
        splits[r] = [to_train(p, p.id in bad) for p in pairs]
    return splits


def run(study: Study, pairs_dir: Path, out: Path) -> Path:
    artifacts.require(pairs_dir, generate.KIND)
    pairs = list(read_jsonl(pairs_dir / "pairs.jsonl", PairRecord))
    cfg = study.corrupt
    meta: dict = {"ratios": cfg.ratios, "items": len(pairs), "splits": {}}
    with artifacts.artifact_dir(out, KIND, [pairs_dir], study.section_hash("corrupt"), meta) as tmp:
        for r, records in build_splits(pairs, cfg.ratios, cfg.seed).items():
            n_bad = sum(rec.is_corrupted for rec in records)
            write_jsonl(split_path(tmp, r), records)
            meta["splits"][ratio_tag(r)] = {"ratio": r, "corrupted": n_bad, "total": len(records)}
        write_json(tmp / "stats.json", meta["splits"])
    log(f"corrupt: {len(cfg.ratios)} splits of {len(pairs)} items ({', '.join(meta['splits'])})")
    return out
