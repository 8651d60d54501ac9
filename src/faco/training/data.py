"""Training examples as token ids, with the loss restricted to the response; padded or packed batches."""

from __future__ import annotations

import bisect
import heapq
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


def _best_fit(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Best-fit decreasing: few sequences, each example into the fullest one it fits."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    rows: list[list[int]] = []
    free: list[tuple[int, int]] = []  # (tokens left, row), sorted
    for i in order:
        k = bisect.bisect_left(free, (lengths[i], -1))
        if k == len(free):
            rows.append([i])
            left, row = capacity - lengths[i], len(rows) - 1
        else:
            left, row = free.pop(k)
            rows[row].append(i)
            left -= lengths[i]
        bisect.insort(free, (left, row))
    return rows


def _even_fill(lengths: Sequence[int], capacity: int, n_rows: int) -> list[list[int]] | None:
    """`n_rows` sequences filled evenly (longest example first, into the emptiest sequence);
    None when an example fits in none of them."""
    rows: list[list[int]] = [[] for _ in range(n_rows)]
    heap = [(0, r) for r in range(n_rows)]  # (tokens used, row); heap[0] is the emptiest
    for i in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        used, row = heap[0]
        if used + lengths[i] > capacity:
            return None
        rows[row].append(i)
        heapq.heapreplace(heap, (used + lengths[i], row))
    return [row for row in rows if row]


def pack(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Group example indices into sequences of at most `capacity` tokens.

    Best-fit decreasing finds how few sequences suffice; the examples are then spread evenly over
    that many (when they fit), so a batch of sequences padded to its longest wastes little.
    """
    fewest = _best_fit(lengths, capacity)
    return _even_fill(lengths, capacity, len(fewest)) or fewest


def packed_row(examples: Sequence[Example]) -> dict[str, list[int]]:
    """Several examples as one sequence: position ids restart at 0 for every example, and the first
    label of every example is ignored, so that none is trained to predict the next one's first token."""
    ids: list[int] = []
    labels: list[int] = []
    pos: list[int] = []
    for e in examples:
        ids += e.input_ids
        labels += [IGNORE, *e.labels[1:]]
        pos += range(len(e.input_ids))
    return {"input_ids": ids, "labels": labels, "position_ids": pos}


class PackedCollator:
    """Batches packed rows without an attention mask; no token attends across examples.

    transformers derives a block-diagonal causal mask from position ids that restart (sdpa/eager)
    or uses the varlen kernels (flash attention), as with its `DataCollatorWithFlattening`. That
    detection is skipped when the model builds a KV cache, hence `use_cache=False`. Shorter rows
    are filled with a padding segment whose positions restart too, so it stays apart as well.
    """

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, batch: Sequence[dict[str, Any]]) -> dict[str, Any]:
        width = max(len(b["input_ids"]) for b in batch)
        ids, labels, pos = [], [], []
        for b in batch:
            fill = width - len(b["input_ids"])
            ids.append(b["input_ids"] + [self.pad_id] * fill)
            labels.append(b["labels"] + [IGNORE] * fill)
            pos.append(b["position_ids"] + list(range(fill)))
        return {"input_ids": torch.tensor(ids), "labels": torch.tensor(labels), "position_ids": torch.tensor(pos),
                "use_cache": False}


def real_token_fraction(lengths: Sequence[int], batch_size: int) -> float:
    """Share of the token slots padded batches of `lengths` (in this order) spend on real tokens."""
    real = sum(lengths)
    if not real:
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
        if packing:  # the whole chunk as one packed row
            batch = PackedCollator(pad_id)([packed_row(chunk)])
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


def response_only_loss(model: Any, inputs: dict[str, Any], num_items: Any = None) -> torch.Tensor:
    """The causal-LM loss with logits computed only where a label is, not for prompt and padding.

    Equal to the model's own loss (mean over labelled tokens, or sum / `num_items` as transformers
    does under gradient accumulation) but skips the vocabulary projection of every other position.
    """
    inner = model.get_base_model() if hasattr(model, "peft_config") else model
    backbone = getattr(inner, inner.base_model_prefix)
    labels = inputs["labels"]
    hidden = backbone(**{k: v for k, v in inputs.items() if k != "labels"}).last_hidden_state
    target = labels[:, 1:]
    keep = target != IGNORE
    logits = inner.get_output_embeddings()(hidden[:, :-1][keep]).float()
    loss = torch.nn.functional.cross_entropy(logits, target[keep], reduction="sum")
    return loss / (num_items if num_items is not None else keep.sum().clamp(min=1))
