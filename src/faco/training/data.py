"""Training examples as token ids, with the loss restricted to the response."""

from __future__ import annotations

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
    """Right-pads a batch; padding is masked from attention and loss."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, batch: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
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


@torch.no_grad()
def per_sample_loss(model: Any, examples: list[Example], pad_id: int, batch_size: int = 8) -> list[float]:
    """Mean response-token loss of each example under `model` (eval mode, no dropout)."""
    was_training = model.training
    model.eval()
    collate = Collator(pad_id)
    device = next(model.parameters()).device
    out: list[float] = []
    for start in range(0, len(examples), batch_size):
        chunk = examples[start : start + batch_size]
        batch = collate([{"input_ids": e.input_ids, "labels": e.labels} for e in chunk])
        batch = {k: v.to(device) for k, v in batch.items()}
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
        shift_logits, shift_labels = logits[:, :-1], batch["labels"][:, 1:]
        tok_loss = torch.nn.functional.cross_entropy(
            shift_logits.transpose(1, 2), shift_labels, ignore_index=IGNORE, reduction="none"
        )
        counts = (shift_labels != IGNORE).sum(1).clamp(min=1)
        out.extend((tok_loss.sum(1) / counts).tolist())
    model.train(was_training)
    return out
