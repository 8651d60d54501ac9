"""Train: one corruption split (+ optional start checkpoint) -> a fine-tuned model with loss logs."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from faco import artifact_kinds, artifacts
from faco.config import ModelSpec, Study
from faco.errors import ConfigError, FacoError, RecordError, VerificationError
from faco.ratios import ratio_tag, split_path
from faco.records import TrainRecord, read_jsonl, write_json
from faco.roles import Role
from faco.training import preflight
from faco.training.checkpoints import has_checkpoints, model_identity, non_finite, prepare_work
from faco.training.loop import rank, train, work_dir_for, world_size
from faco.training.models import load_base


def run(
    study: Study,
    splits: Path,
    ratio: float,
    out: Path,
    start: Path | None = None,
    work_dir: Path | None = None,
    resume: bool = True,
    callbacks: Sequence[Any] = (),
) -> Path:
    """Fine-tune on the split of `ratio`; with `start`, continue from that model artifact (recovery).

    Resumable state lives in `work_dir` (default: `.<out name>.work` next to `out`), removed once
    the artifact is complete; with `resume`, a killed run continues from its last checkpoint there,
    but only when the folder's fingerprint (train config, split manifest and ratio, base model,
    start checkpoint, seed, world size) matches this run; otherwise it starts fresh and says why.
    Under a launcher (torchrun) every process calls this; only rank 0 writes the artifact.
    `callbacks` are extra transformers `TrainerCallback`s.
    """
    preflight.check_training(study)  # before any work (once per config and process)
    manifest = artifacts.require(splits, artifact_kinds.SPLITS)
    ratios = manifest["meta"].get("ratios")
    if not isinstance(ratios, list):
        raise VerificationError(f"{splits / artifacts.MANIFEST}: not a faco manifest (meta.ratios, the ratios of "
                                "its splits, is missing)")
    if ratio not in ratios:
        raise FacoError(f"{splits}: no split for ratio {ratio} (has {ratios})")
    split = split_path(splits, ratio)
    records = list(read_jsonl(split, TrainRecord))
    if not records:
        raise RecordError(f"{split}: the split for ratio {ratio} is empty; nothing to train on")
    cfg = study.train
    parents = [splits]
    meta: dict = {"ratio": ratio, "tag": ratio_tag(ratio), "role": Role.GRID.value,
                  "base_model": cfg.model.model_dump(mode="json")}
    if kind := manifest["meta"].get("kind"):  # one kind's split family (corrupt.kinds)
        meta["kind"] = kind
    if clean := manifest["meta"].get("clean"):  # a cleaned split (train.clean): which arm dropped what
        meta["clean"] = clean
    epochs = None
    spec = cfg.model
    if start is not None:
        artifacts.require(start, artifact_kinds.MODEL)
        parents.append(start)
        meta["start_checkpoint"] = {"path": str(start), "manifest_sha256": artifacts.manifest_hash(start)}
        start_meta = artifacts.read_manifest(start)["meta"]
        meta["start_ratio"] = start_meta["ratio"]
        meta["role"] = Role.RECOVERY.value
        if "kind" in start_meta:  # recovery of one kind's corrupted model
            meta["kind"] = start_meta["kind"]
        epochs = cfg.recovery.epochs if cfg.recovery else None
        spec = ModelSpec(source="local", name_or_path=str(start / "model"))
    texts = [f"{r.prompt}\n{r.response}" for r in records]
    work = work_dir or work_dir_for(out)
    fingerprint = {
        "train": cfg.model_dump(mode="json"),
        "train_section_hash": study.section_hash("train"),
        "splits_manifest_sha256": artifacts.manifest_hash(splits),
        "ratio": ratio,
        "base_model": model_identity(spec.model_dump(mode="json")),
        "start_checkpoint": meta.get("start_checkpoint", {}).get("manifest_sha256"),
        "epochs": epochs,
        "world_size": world_size(),
    }

    def load() -> tuple[Any, Any]:
        return load_base(spec, texts, cfg.seed)

    if rank() != 0:  # a helper process: trains, writes nothing that lasts
        resume = prepare_work(work, fingerprint, resume, main=False)
        tmp = Path(tempfile.mkdtemp(prefix=".train-rank-"))
        try:
            train(cfg, records, load, tmp, work, epochs=epochs, resume=resume, callbacks=callbacks)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return out
    # the work folder is touched only under the output's lock: a second run on the same --out is
    # refused before it can clear the first one's checkpoints
    with artifacts.artifact_dir(out, artifact_kinds.MODEL, parents, study.section_hash("train"), meta) as tmp:
        resume = prepare_work(work, fingerprint, resume, main=True)
        try:
            stats = train(cfg, records, load, tmp, work, epochs=epochs, resume=resume, callbacks=callbacks)
        except BaseException:
            if not has_checkpoints(work):  # nothing to resume from: leave no work folder behind
                shutil.rmtree(work, ignore_errors=True)
            raise
        diverged = non_finite(tmp / "model")
        if diverged:  # a NaN model must not pass for a trained one (its logged losses read 0.0)
            shutil.rmtree(work, ignore_errors=True)
            raise ConfigError(f"train.learning_rate: training diverged at {cfg.learning_rate:g} ({diverged} is "
                              f"NaN/inf after training); lower it")
        write_json(tmp / "train_stats.json", stats)
        meta["train"] = stats
    shutil.rmtree(work, ignore_errors=True)
    return out
