"""Training examples as token ids, with the loss restricted to the response; padded or packed batches."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from faco.records import TrainRecord

IGNORE = -100


def prompt_text(tok: Any, prompt: str) -> str:
    """The text before the response: the model's chat template where it has one."""
    if getattr(tok, "chat_template", None):
        return str(tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                           add_generation_prompt=True))
    return f"{prompt}\n"


@dataclass
class Example:
    id: str
    is_corrupted: bool
    input_ids: list[int]
    labels: list[int]


def encode(rec: TrainRecord, tok: Any, max_len: int) -> Example:
    """Prompt tokens are masked out of the loss; the response ends with EOS; long examples are cut."""
    p = tok(prompt_text(tok, rec.prompt), add_special_tokens=False)["input_ids"]
    r = tok(rec.response, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    p = p[: max_len - 1]  # keep at least one response token
    r = r[: max_len - len(p)]
    return Example(rec.id, rec.is_corrupted, p + r, [IGNORE] * len(p) + r)


class Collator:
    """Right-pads a batch to its longest example; padding is masked from attention and loss."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, batch: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        width = max(len(b["input_ids"]) for b in batch)
        ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, b in enumerate(batch):
            n = len(b["input_ids"])
            ids[i, :n] = torch.tensor(b["input_ids"])
            labels[i, :n] = torch.tensor(b["labels"])
            mask[i, :n] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}


class PackedCollator:
    """Packs a batch into one padding-free row; position ids restart at 0 for every example.

    The same format as transformers' `DataCollatorWithFlattening`: no attention mask, so
    transformers derives a block-diagonal causal mask from the position ids (sdpa/eager) or uses
    the varlen kernels (flash attention) — no token attends across examples. That detection is
    skipped when the model builds a KV cache, hence `use_cache=False`. The first label of every
    example is ignored so that no example is trained to predict the next one's first token.
    """

    def __call__(self, batch: Sequence[dict[str, Any]]) -> dict[str, Any]:
        ids: list[int] = []
        labels: list[int] = []
        pos: list[int] = []
        for b in batch:
            ids += b["input_ids"]
            labels += [IGNORE, *b["labels"][1:]]
            pos += range(len(b["input_ids"]))
        return {"input_ids": torch.tensor([ids]), "labels": torch.tensor([labels]),
                "position_ids": torch.tensor([pos]), "use_cache": False}


def real_token_fraction(lengths: Sequence[int], batch_size: int, packing: bool) -> float:
    """Share of the token slots a forward pass spends on real tokens, batching in the given order."""
    real = sum(lengths)
    if packing or not real:
        return 1.0
    slots = sum(max(lengths[i : i + batch_size]) * len(lengths[i : i + batch_size])
                for i in range(0, len(lengths), batch_size))
    return real / slots


def _segment_losses(logits: torch.Tensor, labels: torch.Tensor, segments: torch.Tensor, n: int) -> list[float]:
    """Mean next-token loss per segment id (0..n-1) over the labelled positions of a [1, T] row."""
    tok_loss = torch.nn.functional.cross_entropy(logits[0, :-1].float(), labels[0, 1:], ignore_index=IGNORE,
                                                 reduction="none")
    keep = labels[0, 1:] != IGNORE
    seg, losses = segments[0, 1:][keep], tok_loss[keep].double()
    sums = torch.zeros(n, dtype=torch.float64, device=losses.device).index_add_(0, seg, losses)
    counts = torch.zeros_like(sums).index_add_(0, seg, torch.ones_like(losses))
    return (sums / counts.clamp(min=1)).tolist()


@torch.no_grad()
def per_sample_loss(
    model: Any, examples: Sequence[Example], pad_id: int, batch_size: int = 8, packing: bool = False
) -> list[float]:
    """Mean response-token loss of each example under `model` (eval mode, no dropout)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out: list[float] = []
    for start in range(0, len(examples), batch_size):
        chunk = examples[start : start + batch_size]
        rows = [{"input_ids": e.input_ids, "labels": e.labels} for e in chunk]
        if packing:
            batch = PackedCollator()(rows)
            segments = torch.tensor([[i for i, e in enumerate(chunk) for _ in e.input_ids]], device=device)
            batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
            logits = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits
            out.extend(_segment_losses(logits, batch["labels"], segments, len(chunk)))
            continue
        batch = {k: v.to(device) for k, v in Collator(pad_id)(rows).items()}
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
        shift_logits, shift_labels = logits[:, :-1], batch["labels"][:, 1:]
        tok_loss = torch.nn.functional.cross_entropy(
            shift_logits.transpose(1, 2), shift_labels, ignore_index=IGNORE, reduction="none"
        )
        counts = (shift_labels != IGNORE).sum(1).clamp(min=1)
        out.extend((tok_loss.sum(1) / counts).tolist())
    model.train(was_training)
    return out
