"""Train: one corruption split (+ optional start checkpoint) -> a fine-tuned model with loss logs.

Also the untrained base model as a model artifact (`base`), and two artifacts a pipeline moves
apart from the weights: the epoch snapshots (`run(..., snapshots=DIR)`) and the loss logs (`logs`).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from faco import artifact_kinds, artifacts
from faco.config import ModelSpec, Study
from faco.errors import ConfigError, FacoError, RecordError, Terminated, VerificationError
from faco.ratios import ratio_tag, split_path
from faco.records import TrainRecord, read_jsonl, write_json
from faco.roles import Role
from faco.training import preflight, torchrun
from faco.training.checkpoints import has_checkpoints, model_identity, non_finite, prepare_work
from faco.training.loop import rank, train, work_dir_for, world_size
from faco.training.models import load_base

#: The module every process of a multi-process run starts (`python -m faco.stages.train`).
ENTRY = "faco.stages.train"
#: The files of a model artifact that `logs` copies: what the analysis reads of a training run.
LOG_FILES = ("loss.jsonl", "sample_loss.jsonl", "train_stats.json")


def _meta(study: Study, manifest: dict[str, Any], ratio: float, start: Path | None) -> dict[str, Any]:
    """The model's manifest meta: ratio, tag, seed, base model, kind; with `start`, where it started."""
    cfg = study.train
    meta: dict[str, Any] = {"ratio": ratio, "tag": ratio_tag(ratio), "role": Role.GRID.value, "seed": cfg.seed,
                            "base_model": cfg.model.model_dump(mode="json")}
    if kind := manifest["meta"].get("kind"):  # one kind's split family (corrupt.kinds)
        meta["kind"] = kind
    if start is not None:
        artifacts.require(start, artifact_kinds.MODEL)
        meta["start_checkpoint"] = {"path": str(start), "manifest_sha256": artifacts.manifest_hash(start)}
        start_meta = artifacts.read_manifest(start)["meta"]
        meta["start_ratio"] = start_meta["ratio"]
        meta["role"] = Role.RECOVERY.value
        if "kind" in start_meta:  # recovery of one kind's corrupted model
            meta["kind"] = start_meta["kind"]
    return meta


def _fingerprint(study: Study, splits: Path, ratio: float, meta: dict[str, Any], epochs: int | None
                 ) -> dict[str, Any]:
    """What determines training: a work folder's checkpoints are resumed only by a run with the same.

    Inputs are pinned by content: the split and a start model by their manifest hashes, a local base
    model by its files' hashes; never by path or mtime (a retried pod downloads them anew).
    """
    cfg = study.train
    return {
        "train": cfg.model_dump(mode="json"),
        "train_section_hash": study.section_hash("train"),
        "splits_manifest_sha256": artifacts.manifest_hash(splits),
        "ratio": ratio,
        "base_model": model_identity(cfg.model.model_dump(mode="json")),
        "start_checkpoint": meta.get("start_checkpoint", {}).get("manifest_sha256"),
        "epochs": epochs,
        "world_size": world_size(),
    }


def run(
    study: Study,
    splits: Path,
    ratio: float,
    out: Path,
    start: Path | None = None,
    work_dir: Path | None = None,
    resume: bool = True,
    callbacks: Sequence[Any] = (),
    snapshots: Path | None = None,
    nproc: int | None = None,
    config_text: str | None = None,
) -> Path:
    """Fine-tune on the split of `ratio`; with `start`, continue from that model artifact (recovery).

    One process per visible accelerator (`nproc`: another count; `FACO_NPROC` too): on one, or under
    a launcher already, in this process; on more, `torchrun` runs this module's `main` on each, which
    loads `config_text` (default: `study` as YAML; a KFP task passes its config slice).
    Resumable state lives in `work_dir` (default: `.<out name>.work` next to `out`), removed once
    the artifact is complete; with `resume`, a killed run continues from its last checkpoint there,
    but only when the folder's fingerprint (`_fingerprint`) matches this run; otherwise it starts
    fresh and says why. Only rank 0 writes the artifact. `callbacks` are extra transformers
    `TrainerCallback`s (one process only). `snapshots`: write the epoch snapshots there, as their own
    artifact (`write_snapshots`), instead of `checkpoints/` in `out`.
    """
    n = torchrun.processes(nproc)
    if n == 1 or torchrun.under_launcher():
        return _train(study, splits, ratio, out, start, work_dir, resume, callbacks, snapshots)
    if callbacks:
        raise ConfigError(f"train: {n} processes: extra training callbacks run in one process only (nproc=1)")
    with tempfile.TemporaryDirectory(prefix="faco-torchrun-") as tmp:
        config = Path(tmp) / "config.yaml"
        config.write_text(config_text if config_text is not None else study.to_yaml())
        args = launch_args(config, splits.resolve(), ratio, out.resolve(), start.resolve() if start else None,
                           work_dir.resolve() if work_dir else None, snapshots.resolve() if snapshots else None)
        torchrun.run(n, ENTRY, args if resume else [*args, "--no-resume"])
    return out


def _train(study: Study, splits: Path, ratio: float, out: Path, start: Path | None, work_dir: Path | None,
           resume: bool, callbacks: Sequence[Any], snapshots: Path | None) -> Path:
    """`run` in this process (every rank of a launched run calls it)."""
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
    meta = _meta(study, manifest, ratio, start)
    epochs = cfg.recovery.epochs if start is not None and cfg.recovery else None
    spec = ModelSpec(source="local", name_or_path=str(start / "model")) if start is not None else cfg.model
    texts = [f"{r.prompt}\n{r.response}" for r in records]
    work = work_dir or work_dir_for(out)
    fingerprint = _fingerprint(study, splits, ratio, meta, epochs)
    kwargs: dict[str, Any] = {"epochs": epochs, "callbacks": callbacks, "snapshots_in_out": snapshots is None}

    def load() -> tuple[Any, Any]:
        return load_base(spec, texts, cfg.seed)

    if rank() != 0:  # a helper process: trains, writes nothing that lasts
        resume = prepare_work(work, fingerprint, resume, main=False)
        tmp = Path(tempfile.mkdtemp(prefix=".train-rank-"))
        try:
            train(cfg, records, load, tmp, work, resume=resume, **kwargs)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return out
    # the work folder is touched only under the output's lock: a second run on the same --out is
    # refused before it can clear the first one's checkpoints
    parents = [splits, *([start] if start is not None else [])]
    with artifacts.artifact_dir(out, artifact_kinds.MODEL, parents, study.section_hash("train"), meta) as tmp:
        resume = prepare_work(work, fingerprint, resume, main=True)
        try:
            stats = train(cfg, records, load, tmp, work, resume=resume, **kwargs)
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
    if snapshots is not None:
        write_snapshots(study, work / "epochs", out, snapshots)
    shutil.rmtree(work, ignore_errors=True)
    return out


def write_snapshots(study: Study, epochs: Path, model: Path, out: Path) -> Path:
    """The epoch snapshots `epochs/epoch_N/` of `model` as an artifact `checkpoints/epoch_N/` (the
    layout inside a model artifact), without the last epoch: the model itself is that one
    (meta `final_epoch`). Empty without `save_every_epoch`."""
    found = sorted(int(p.name.removeprefix("epoch_")) for p in epochs.glob("epoch_*")) if epochs.is_dir() else []
    m = artifacts.read_manifest(model)["meta"]
    meta = {k: m[k] for k in ("ratio", "tag", "role", "seed", "start_ratio", "kind") if k in m}
    meta.update(epochs=found[:-1], final_epoch=found[-1] if found else None)
    with artifacts.artifact_dir(out, artifact_kinds.SNAPSHOTS, [model], study.section_hash("train"), meta) as tmp:
        for n in found[:-1]:
            shutil.copytree(epochs / f"epoch_{n}", tmp / "checkpoints" / f"epoch_{n}")
    return out


def logs(study: Study, model: Path, out: Path) -> Path:
    """A model artifact's loss logs and statistics (`LOG_FILES`) as an artifact of their own, with the
    model's meta: what the analysis reads of a training run, kilobytes instead of the weights."""
    meta = dict(artifacts.require(model, artifact_kinds.MODEL)["meta"])
    with artifacts.artifact_dir(out, artifact_kinds.TRAIN_LOGS, [model], study.section_hash("train"), meta) as tmp:
        for name in LOG_FILES:
            if (model / name).is_file():
                shutil.copyfile(model / name, tmp / name)
    return out


def base(study: Study, splits: Path, out: Path) -> Path:
    """The untrained base model (`train.model`, `train.seed`) as a model artifact, meta `{"role": "base"}`.

    A tiny random model's tokenizer is trained on the clean split's texts, as `run` does for it.
    """
    ratios = artifacts.require(splits, artifact_kinds.SPLITS)["meta"]["ratios"]
    clean = 0.0 if 0.0 in ratios else ratios[0]
    records = read_jsonl(split_path(splits, clean), TrainRecord)
    cfg = study.train
    meta = {"base": True, "role": Role.BASE.value, "tag": "base", "seed": cfg.seed,
            "base_model": cfg.model.model_dump(mode="json")}
    with artifacts.artifact_dir(out, artifact_kinds.MODEL, [splits], study.section_hash("train"), meta) as tmp:
        model, tok = load_base(cfg.model, [f"{r.prompt}\n{r.response}" for r in records], cfg.seed)
        model.save_pretrained(tmp / "model")
        tok.save_pretrained(tmp / "model")
    return out


def launch_args(config: Path, splits: Path, ratio: float, out: Path, start: Path | None = None,
                work_dir: Path | None = None, snapshots: Path | None = None) -> list[str]:
    """The arguments of `main` (each launched process) for one split."""
    args = [str(config), "--splits", str(splits), "--ratio", repr(ratio), "--out", str(out)]
    if work_dir is not None:
        args += ["--work-dir", str(work_dir)]
    if snapshots is not None:
        args += ["--snapshots", str(snapshots)]
    return [*args, "--start", str(start)] if start is not None else args


def main(argv: list[str] | None = None) -> int:
    """One process of a launched run: `torchrun ... -m faco.stages.train CONFIG --splits ... --out ...`.

    torchrun (or a training operator) sets RANK, WORLD_SIZE and MASTER_ADDR/PORT; every process runs
    the same command and only rank 0 writes the model artifact.
    """
    from faco import config_slices, signals

    p = argparse.ArgumentParser(prog=f"python -m {ENTRY}", description="One process of a launched train run.")
    p.add_argument("config", type=Path, help="study config (YAML), or a pipeline task's config slice")
    p.add_argument("--splits", type=Path, required=True, help="splits artifact of the corrupt stage")
    p.add_argument("--ratio", type=float, required=True, help="corruption ratio of the split to train on")
    p.add_argument("--out", type=Path, required=True, help="model artifact to write")
    p.add_argument("--start", type=Path, help="model artifact to continue from (recovery)")
    p.add_argument("--snapshots", type=Path, help="write the epoch snapshots here, as their own artifact")
    p.add_argument("--work-dir", type=Path, help="resumable checkpoints (default: .<out>.work next to --out)")
    p.add_argument("--no-resume", action="store_true", help="start over even if the work dir has checkpoints")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config override, e.g. train.deepspeed=zero3")
    a = p.parse_args(argv)
    try:
        with signals.handled():
            if not a.config.is_file():
                raise ConfigError(f"{a.config}: no such config file")
            study = config_slices.load(a.config.read_text(), str(a.config), a.overrides)
            _train(study, a.splits, a.ratio, a.out, a.start, a.work_dir, not a.no_resume, (), a.snapshots)
    except (FacoError, Terminated) as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
