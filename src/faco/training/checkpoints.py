"""Saving a trained model as a plain transformers folder, checked against the model's size."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from faco.errors import FacoError


def _is_peft(model: Any) -> bool:
    return hasattr(model, "get_base_model") and hasattr(model, "peft_config")


def count_params(model: Any) -> int:
    """Parameters of the model as saved: shared tensors once, LoRA adapters excluded (they are merged).

    Under ZeRO-3 a parameter's local tensor is a shard; `ds_numel` holds its full size.
    """
    return sum(getattr(p, "ds_numel", p.numel()) for n, p in model.named_parameters() if "lora_" not in n)


def count_saved_params(folder: Path) -> int:
    """Number of values in the safetensors files of a saved model."""
    from safetensors import safe_open

    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise FacoError(f"{folder}: no *.safetensors weights were saved")
    total = 0
    for f in files:
        with safe_open(str(f), framework="pt") as fh:
            for key in fh.keys():  # noqa: SIM118 - safe_open is not a mapping
                n = 1
                for d in fh.get_slice(key).get_shape():
                    n *= d
                total += n
    return total


def save_model(trainer: Any, tok: Any, folder: Path, expected: int, main: bool) -> None:
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
    on_disk = count_saved_params(folder)
    if on_disk != expected:
        raise FacoError(
            f"{folder}: saved {on_disk} parameters, the model has {expected} (under ZeRO-3 set "
            f'"stage3_gather_16bit_weights_on_model_save": true in the DeepSpeed config)'
        )
