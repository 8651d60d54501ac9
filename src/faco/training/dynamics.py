"""Per-sample training dynamics for the audit (`faco.audit`).

`measure` scores every sample under a model: the mean loss and the mean probability of its response
tokens (as training sees them: the chat-formatted prompt, the response and EOS, cut to
`max_seq_len`), and, for a sample with options, the log-likelihood of each option's answer line
(`Answer: <option>` right after the prompt, as the held-out benchmark's `acc_ll` scores it). The
prompt goes through the model once; the response and the options continue from its cache.

`DynamicsRecorder` is a Trainer callback that measures every sample at the end of each epoch's last
step (as the loop's own per-sample losses) into `<work>/dynamics/epoch_N.jsonl`, kept across a
resume, and writes them into the model artifact as `dynamics.jsonl`. One process only: under a
launcher with several processes it refuses to start.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback

from faco.audit.inputs import DYNAMICS_FILE
from faco.errors import FacoError
from faco.progress import track
from faco.records import TrainRecord
from faco.training.data import IGNORE, encode


@dataclass(frozen=True)
class Tracked:
    """A training sample to measure, with its options where it has them."""

    record: TrainRecord
    options: tuple[str, ...] = ()


def _token_logprobs(logits: torch.Tensor, targets: Sequence[int]) -> torch.Tensor:
    return torch.log_softmax(logits.float(), dim=-1)[torch.arange(len(targets)), torch.tensor(targets)]


def _options(model: Any, cache: Any, first: torch.Tensor, conts: list[list[int]], pad: int) -> list[float]:
    """Summed log-probability of each continuation after the cached prompt (batched, right-padded)."""
    width = max(map(len, conts))
    ctx = cache.get_seq_length()
    ids = torch.full((len(conts), width), pad)
    mask = torch.zeros((len(conts), ctx + width), dtype=torch.long)
    mask[:, :ctx] = 1
    for j, cont in enumerate(conts):
        ids[j, : len(cont)] = torch.tensor(cont)
        mask[j, ctx : ctx + len(cont)] = 1
    cache.batch_repeat_interleave(len(conts))
    device = first.device
    logits = model(input_ids=ids.to(device), attention_mask=mask.to(device), past_key_values=cache).logits
    return [float(first[cont[0]] + _token_logprobs(logits[j, : len(cont) - 1], cont[1:]).sum())
            for j, cont in enumerate(conts)]


@torch.no_grad()
def measure_one(model: Any, tok: Any, sample: Tracked, max_len: int) -> dict[str, Any]:
    """`{id, loss, confidence, options}` of one sample (options: one log-likelihood per option, or [])."""
    ex = encode(sample.record, tok, max_len)
    cut = next(i for i, label in enumerate(ex.labels) if label != IGNORE)
    prompt, response = ex.input_ids[:cut], ex.input_ids[cut:]
    device = next(model.parameters()).device
    head = model(input_ids=torch.tensor([prompt], device=device), use_cache=True, logits_to_keep=1)
    first = torch.log_softmax(head.logits[0, -1].float(), dim=-1)
    spare = copy.deepcopy(head.past_key_values) if sample.options else None
    logp = first[response[0]].reshape(1)
    if len(response) > 1:
        tail = model(input_ids=torch.tensor([response[:-1]], device=device), past_key_values=head.past_key_values)
        logp = torch.cat([logp, _token_logprobs(tail.logits[0], response[1:])])
    options: list[float] = []
    if spare is not None:
        conts = [tok(f"Answer: {o}", add_special_tokens=False)["input_ids"] for o in sample.options]
        options = _options(model, spare, first, conts, tok.pad_token_id)
    return {"id": ex.id, "loss": float(-logp.mean()), "confidence": float(logp.exp().mean()), "options": options}


def measure(model: Any, tok: Any, samples: Sequence[Tracked], max_len: int, what: str) -> list[dict[str, Any]]:
    """`measure_one` of every sample, in eval mode (the model's mode is restored after)."""
    was_training = model.training
    model.eval()
    try:
        return [measure_one(model, tok, s, max_len) for s in track(samples, what, total=len(samples))]
    finally:
        model.train(was_training)


class DynamicsRecorder(TrainerCallback):  # type: ignore[misc]
    """Measures every sample after each epoch; the training loop sets `tokenizer` once it has loaded it."""

    def __init__(self, samples: Sequence[Tracked], max_len: int) -> None:
        self.samples = list(samples)
        self.max_len = max_len
        self.tokenizer: Any = None
        self.folder: Path | None = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if args.world_size > 1:
            raise FacoError("audit: training dynamics are recorded in one process; run the audit without a launcher")
        self.folder = Path(args.output_dir).parent / "dynamics"  # the work folder: kept for a resume
        self.folder.mkdir(parents=True, exist_ok=True)

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if not float(state.epoch or 0).is_integer() or self.folder is None:
            return
        epoch = round(state.epoch)
        rows = measure(kw["model"], self.tokenizer, self.samples, self.max_len, f"dynamics epoch {epoch}")
        text = "".join(json.dumps({"epoch": epoch, **r}) + "\n" for r in rows)
        (self.folder / f"epoch_{epoch}.jsonl").write_text(text)

    def artifact_files(self, out: Path) -> None:
        """Write every epoch's measurements, in epoch order, to `out/dynamics.jsonl`."""
        assert self.folder is not None
        files = sorted(self.folder.glob("epoch_*.jsonl"), key=lambda p: int(p.stem.split("_")[1]))
        (out / DYNAMICS_FILE).write_text("".join(p.read_text() for p in files))

