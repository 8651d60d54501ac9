"""Per-sample training dynamics for the audit (`faco.audit`).

`measure` scores every sample under a model: the mean loss and the mean probability of its response
tokens (as training sees them: the chat-formatted prompt, the response and EOS, cut to
`max_seq_len`), and, for a sample with options, the log-likelihood of each option's answer line
(`Answer: <option>` right after the prompt, as the held-out benchmark's `acc_ll` scores it). One
forward pass per batch: each sample is its prompt followed by its branches (the response, then each
answer line), every branch at the positions that follow the prompt and attending to the prompt and
to itself only (a boolean 4-D attention mask; sdpa or eager attention), so the prompt is computed
once for all of them.

`DynamicsRecorder` is a Trainer callback that measures every training sample at the end of each
epoch's last step (as the loop's own per-sample losses), and the samples held out of this training
run after the last epoch (the audit's cross-fitting, `faco.stages.audit`). One process only: under a
launcher with several processes it refuses to start.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback

from faco.errors import FacoError
from faco.progress import track
from faco.records import TrainRecord
from faco.training.data import IGNORE, encode


@dataclass(frozen=True)
class Tracked:
    """A training sample to measure, with its options where it has them."""

    record: TrainRecord
    options: tuple[str, ...] = ()


@dataclass
class _Row:
    """One sample laid out for a single forward pass: the prompt, then each branch (the response, then every
    option's answer line) with its last token dropped, each branch attending to the prompt and to itself."""

    ids: list[int]
    positions: list[int]
    segments: list[int]  # 0: the prompt; b >= 1: branch b
    prompt: int  # tokens in the prompt
    branches: list[list[int]]  # their full token ids (the targets)
    starts: list[int]  # where each branch's inputs begin in `ids`


def _layout(sample: Tracked, tok: Any, max_len: int) -> _Row:
    ex = encode(sample.record, tok, max_len)
    cut = next(i for i, label in enumerate(ex.labels) if label != IGNORE)
    prompt = ex.input_ids[:cut]
    branches = [ex.input_ids[cut:]] + [tok(f"Answer: {o}", add_special_tokens=False)["input_ids"]
                                       for o in sample.options]
    row = _Row(list(prompt), list(range(len(prompt))), [0] * len(prompt), len(prompt), branches, [])
    for b, branch in enumerate(branches, 1):
        row.starts.append(len(row.ids))
        row.ids += branch[:-1]
        row.positions += range(len(prompt), len(prompt) + len(branch) - 1)
        row.segments += [b] * (len(branch) - 1)
    return row


def _collate(rows: Sequence[_Row], pad: int) -> dict[str, torch.Tensor]:
    """Right-padded ids and positions, and the boolean 4-D mask of every row's branches (padding attends to
    itself only, so no row of the softmax is empty)."""
    width = max(len(r.ids) for r in rows)
    ids = torch.full((len(rows), width), pad)
    pos = torch.zeros((len(rows), width), dtype=torch.long)
    mask = torch.eye(width, dtype=torch.bool).repeat(len(rows), 1, 1, 1)
    for i, r in enumerate(rows):
        n = len(r.ids)
        ids[i, :n], pos[i, :n] = torch.tensor(r.ids), torch.tensor(r.positions)
        seg, idx = torch.tensor(r.segments), torch.arange(n)
        visible = (seg[:, None] == seg[None, :]) | (seg[None, :] == 0)
        mask[i, 0, :n, :n] = (idx[:, None] >= idx[None, :]) & visible
    return {"input_ids": ids, "position_ids": pos, "attention_mask": mask}


def _scores(logp: torch.Tensor, row: _Row) -> dict[str, Any]:
    """From the log-probabilities at the prompt's last position (row 0) and at every branch input (the rest,
    in order): the response's loss and mean token probability, each option's summed log-likelihood."""
    per = []
    for branch, start in zip(row.branches, row.starts, strict=True):
        at = torch.tensor([0, *range(start - row.prompt + 1, start - row.prompt + len(branch))])
        per.append(logp[at, torch.tensor(branch)])
    response = per[0]
    return {"loss": float(-response.mean()), "confidence": float(response.exp().mean()),
            "options": [float(x.sum()) for x in per[1:]]}


@torch.no_grad()
def measure_batch(model: Any, tok: Any, samples: Sequence[Tracked], max_len: int) -> list[dict[str, Any]]:
    """`{id, loss, confidence, options}` of every sample, in one forward pass of the batch (options: one
    log-likelihood per option, or []). The vocabulary projection runs only where a token is scored."""
    rows = [_layout(s, tok, max_len) for s in samples]
    inner = model.get_base_model() if hasattr(model, "peft_config") else model
    backbone = getattr(inner, inner.base_model_prefix)
    device = next(model.parameters()).device
    batch = {k: v.to(device) for k, v in _collate(rows, tok.pad_token_id).items()}
    hidden = backbone(**batch, use_cache=False).last_hidden_state
    head = inner.get_output_embeddings()
    out = []
    for i, (s, row) in enumerate(zip(samples, rows, strict=True)):
        keep = torch.tensor([row.prompt - 1, *range(row.prompt, len(row.ids))], device=device)
        logp = torch.log_softmax(head(hidden[i, keep]).float(), dim=-1).cpu()
        out.append({"id": s.record.id, **_scores(logp, row)})
    return out


def measure(model: Any, tok: Any, samples: Sequence[Tracked], max_len: int, what: str,
            batch: int = 8) -> list[dict[str, Any]]:
    """`measure_batch` over batches of `batch` samples, in eval mode (the model's mode is restored after)."""
    was_training = model.training
    model.eval()
    chunks = [samples[i : i + batch] for i in range(0, len(samples), batch)]
    try:
        return [row for chunk in track(chunks, what, total=len(chunks))
                for row in measure_batch(model, tok, chunk, max_len)]
    finally:
        model.train(was_training)


class DynamicsRecorder(TrainerCallback):  # type: ignore[misc]
    """Measures the training samples after each epoch into `<work>/dynamics/epoch_N.jsonl`, and the
    `heldout` samples (ones it does not train on) after the last into `<work>/dynamics/heldout.jsonl`;
    the training loop sets `tokenizer` once it has loaded it."""

    def __init__(self, samples: Sequence[Tracked], max_len: int, heldout: Sequence[Tracked] = ()) -> None:
        self.samples = list(samples)
        self.heldout = list(heldout)
        self.max_len = max_len
        self.tokenizer: Any = None
        self.folder: Path | None = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if args.world_size > 1:
            raise FacoError("audit: training dynamics are recorded in one process; run the audit without a launcher")
        self.folder = Path(args.output_dir).parent / "dynamics"
        self.folder.mkdir(parents=True, exist_ok=True)

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if not float(state.epoch or 0).is_integer() or self.folder is None:
            return
        epoch = round(state.epoch)
        batch = args.per_device_train_batch_size
        rows = measure(kw["model"], self.tokenizer, self.samples, self.max_len, f"dynamics epoch {epoch}", batch)
        _write(self.folder / f"epoch_{epoch}.jsonl", [{"epoch": epoch, **r} for r in rows])
        if epoch == round(args.num_train_epochs) and self.heldout:
            rows = measure(kw["model"], self.tokenizer, self.heldout, self.max_len, "held-out samples", batch)
            _write(self.folder / "heldout.jsonl", [{"epoch": epoch, **r} for r in rows])


def _write(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
