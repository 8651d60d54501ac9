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
