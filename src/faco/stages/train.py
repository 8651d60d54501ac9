"""Train: one corruption split (+ optional start checkpoint) -> a fine-tuned model with loss logs."""

from __future__ import annotations

from pathlib import Path

from faco import artifacts
from faco.config import Study
from faco.errors import FacoError
from faco.records import TrainRecord, read_jsonl, write_json
from faco.stages import corrupt
from faco.training.loop import train
from faco.training.models import load_base

KIND = "model"


def run(study: Study, splits: Path, ratio: float, out: Path, start: Path | None = None) -> Path:
    """Fine-tune on the split of `ratio`; with `start`, continue from that model artifact (recovery)."""
    manifest = artifacts.require(splits, corrupt.KIND)
    if ratio not in manifest["meta"]["ratios"]:
        raise FacoError(f"{splits}: no split for ratio {ratio} (has {manifest['meta']['ratios']})")
    records = list(read_jsonl(corrupt.split_path(splits, ratio), TrainRecord))
    cfg = study.train
    parents = [splits]
    meta: dict = {"ratio": ratio, "tag": corrupt.ratio_tag(ratio), "base_model": cfg.model.model_dump(mode="json")}
    epochs = None
    if start is not None:
        artifacts.require(start, KIND)
        parents.append(start)
        meta["start_checkpoint"] = {"path": str(start), "manifest_sha256": artifacts.manifest_hash(start)}
        meta["start_ratio"] = artifacts.read_manifest(start)["meta"]["ratio"]
        epochs = cfg.recovery.epochs if cfg.recovery else None
    with artifacts.artifact_dir(out, KIND, parents, study.section_hash("train"), meta) as tmp:
        if start is not None:
            from faco.config import ModelSpec

            model, tok = load_base(ModelSpec(source="local", name_or_path=str(start / "model")), [], cfg.seed)
        else:
            texts = [f"{r.prompt}\n{r.response}" for r in records]
            model, tok = load_base(cfg.model, texts, cfg.seed)
        stats = train(cfg, records, model, tok, tmp, epochs=epochs)
        write_json(tmp / "train_stats.json", stats)
        meta["train"] = stats
    return out
