"""Saving a trained model as a plain transformers folder, checked against the model's size; the
fingerprint that lets a work folder's checkpoints be resumed only by the run that made them."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

from faco.errors import FacoError
from faco.progress import log

#: The file in a work folder that records what its checkpoints were trained on.
FINGERPRINT = "fingerprint.json"


def _is_peft(model: Any) -> bool:
    return hasattr(model, "get_base_model") and hasattr(model, "peft_config")


def count_params(model: Any) -> int:
    """Parameters of the model as saved: shared tensors once, LoRA adapters excluded (they are merged).

    Under ZeRO-3 a parameter's local tensor is a shard; `ds_numel` holds its full size.
    """
    return sum(getattr(p, "ds_numel", p.numel()) for n, p in model.named_parameters() if "lora_" not in n)


def tied_keys(model: Any) -> dict[str, str]:
    """Weights the model ties to another (e.g. `lm_head.weight` -> `model.embed_tokens.weight`)."""
    base = model.get_base_model() if _is_peft(model) else model
    return dict(getattr(base, "all_tied_weights_keys", None) or {})


def count_saved_params(folder: Path, tied: dict[str, str] | None = None) -> int:
    """Number of values in the safetensors files of a saved model, a tied copy counted once."""
    from safetensors import safe_open

    files = sorted(folder.glob("*.safetensors"))
    sizes: dict[str, int] = {}
    for f in files:
        with safe_open(str(f), framework="pt") as fh:
            for key in fh.keys():  # noqa: SIM118 - safe_open is not a mapping
                n = 1
                for d in fh.get_slice(key).get_shape():
                    n *= d
                sizes[key] = n
    return sum(n for key, n in sizes.items() if (tied or {}).get(key) not in sizes)


def save_model(trainer: Any, tok: Any, folder: Path, expected: int, main: bool,
               tied: dict[str, str] | None = None) -> None:
    """Save the trained model (LoRA merged, ZeRO-3 gathered) loadable by `from_pretrained`.

    Call on every process: under ZeRO-3 gathering the weights is collective. The main process
    writes and then checks that the folder holds `expected` parameters.
    """
    model = trainer.model
    if _is_peft(model):
        if main:
            from faco.training.models import merged_state_dict

            base, state = merged_state_dict(model)
            base.save_pretrained(folder, state_dict=state)
    else:
        trainer.save_model(str(folder))
    if not main:
        return
    tok.save_pretrained(folder)
    on_disk = count_saved_params(folder, tied)
    if on_disk != expected:
        raise FacoError(
            f"{folder}: saved {on_disk} parameters, the model has {expected} (under ZeRO-3 set "
            f'"stage3_gather_16bit_weights_on_model_save": true in the DeepSpeed config)'
        )


def non_finite(folder: Path) -> str | None:
    """The name of the first tensor in `folder`'s safetensors files that holds NaN or inf, or None
    (read one tensor at a time)."""
    import torch
    from safetensors import safe_open

    for f in sorted(folder.glob("*.safetensors")):
        with safe_open(str(f), framework="pt") as fh:
            for key in fh.keys():  # noqa: SIM118 - safe_open is not a mapping
                tensor = fh.get_tensor(key)
                if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                    return key
    return None


def model_identity(spec: dict[str, Any]) -> dict[str, Any]:
    """A base model as the fingerprint sees it: its spec, plus each file's content hash for a local
    folder, so a swapped model changes it and the same files anywhere, at any mtime, do not (a
    retried pod that downloads its inputs again resumes). A start model (recovery) is an artifact:
    the fingerprint pins it by its manifest hash instead (`train.run`)."""
    from faco.artifacts import sha256_file

    identity = dict(spec)
    path = Path(str(spec.get("name_or_path") or ""))
    if spec.get("source") == "local" and path.is_dir():
        identity["name_or_path"] = None  # where it lies is not what it is
        identity["files"] = {f.relative_to(path).as_posix(): sha256_file(f)
                             for f in sorted(path.rglob("*")) if f.is_file()}
    return identity


def _changes(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    out: list[str] = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            out.extend(_changes(a, b, f"{prefix}{key}."))
        else:
            short = all(isinstance(v, int | float | bool | None) or (isinstance(v, str) and len(v) <= 40)
                        for v in (a, b))
            shown = f" ({a!r} -> {b!r})" if short else ""
            out.append(f"{prefix}{key}{shown}")
    return out


_CHECKPOINT = re.compile(r"checkpoint-(\d+)")


def _step(checkpoint: Path) -> int | None:
    """The optimizer step a Trainer checkpoint folder is named for, or None for another name."""
    m = _CHECKPOINT.fullmatch(checkpoint.name)
    return int(m.group(1)) if m else None


def is_whole(checkpoint: Path) -> bool:
    """The Trainer writes `trainer_state.json` last: a checkpoint is whole once it parses and names
    the checkpoint's step."""
    try:
        state = json.loads((checkpoint / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(state, dict) and state.get("global_step") == _step(checkpoint)


def last_checkpoint(trainer_dir: Path, main: bool) -> Path | None:
    """The newest whole Trainer checkpoint in `trainer_dir`, or None.

    A run killed while saving leaves a checkpoint without (or with a torn) `trainer_state.json`:
    it is skipped, and the main process removes it and says so.
    """
    named = ((_step(c), c) for c in trainer_dir.glob("checkpoint-*") if c.is_dir())
    found = sorted(((step, c) for step, c in named if step is not None), reverse=True)
    for _, checkpoint in found:
        if is_whole(checkpoint):
            return checkpoint
        if main:
            log(f"train: {checkpoint} is incomplete (the run was killed while saving it): removed")
            shutil.rmtree(checkpoint, ignore_errors=True)
    return None


def has_checkpoints(work: Path) -> bool:
    """Whether a work folder holds a whole checkpoint a later run could resume from."""
    return (work / "trainer").is_dir() and any(is_whole(c) for c in (work / "trainer").glob("checkpoint-*"))


def prepare_work(work: Path, fingerprint: dict[str, Any], resume: bool, main: bool) -> bool:
    """Whether the checkpoints in `work` may be resumed: only when they were made with exactly
    `fingerprint`. Otherwise (and without `resume`) the main process clears the folder, logging
    why, and records the new fingerprint. The main process must hold the output's lock."""
    recorded_at = work / FINGERPRINT
    try:
        recorded = json.loads(recorded_at.read_text()) if recorded_at.is_file() else None
    except (OSError, ValueError):
        recorded = None
    if resume and recorded == fingerprint:
        return True
    if main:
        if has_checkpoints(work) and resume:
            why = ("it has no readable fingerprint" if not isinstance(recorded, dict)
                   else ", ".join(_changes(recorded, fingerprint)) + " changed")
            log(f"train: not resuming from {work}: {why}; starting fresh")
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True, exist_ok=True)
        recorded_at.write_text(json.dumps(fingerprint, indent=2, sort_keys=True) + "\n")
    return False
