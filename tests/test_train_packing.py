"""Packed batches: no attention across examples, the same per-sample losses as padded batches."""

from __future__ import annotations

import math
import random

import pytest
import torch

from faco.config import ModelSpec, TinyModelSpec
from faco.records import TrainRecord
from faco.training.data import (
    IGNORE,
    Collator,
    Example,
    PackedCollator,
    _segment_losses,
    encode,
    pack,
    packed_row,
    per_sample_loss,
    real_token_fraction,
    response_only_loss,
)
from faco.training.models import tiny_model

TEXTS = [
    ("What is two plus two?", "Two plus two is four."),
    ("Name a primary colour.", "Red is a primary colour, and so are blue and yellow."),
    ("Which planet is largest?", "Jupiter."),
    ("What do bees make?", "Bees make honey from the nectar of flowers they visit."),
    ("Is ice cold?", "Yes, ice is frozen water and it is cold."),
]


def _records() -> list[TrainRecord]:
    return [TrainRecord(id=f"q{i}", source="s", domain="commonsense", prompt=p, response=r, is_corrupted=i % 2 == 1)
            for i, (p, r) in enumerate(TEXTS)]


@pytest.fixture(scope="module")
def tiny() -> tuple[torch.nn.Module, object]:
    spec = ModelSpec(source="tiny-random", tiny=TinyModelSpec(hidden_size=32, layers=2, heads=2, vocab_size=300))
    model, tok = tiny_model(spec, [f"{p}\n{r}" for p, r in TEXTS] * 4, seed=0)
    return model, tok


def test_packed_rows_reset_positions_and_pad_as_a_separate_segment() -> None:
    a, b, c = Example("a", False, [5, 6, 7], [IGNORE, 6, 7]), Example("b", True, [8, 9], [8, 9]), \
        Example("c", False, [4], [4])
    batch = PackedCollator(pad_id=0)([packed_row([a, b]), packed_row([c])])
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8, 9], [4, 0, 0, 0, 0]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 0, 1], [0, 0, 1, 2, 3]]
    assert batch["labels"].tolist() == [[IGNORE, 6, 7, IGNORE, 9], [IGNORE] * 5]
    assert "attention_mask" not in batch
    assert batch["use_cache"] is False  # with a KV cache transformers would not detect the packing


def test_pack_fills_sequences_without_exceeding_capacity() -> None:
    lengths = [128, 200, 56, 128, 100, 90, 66, 250, 6]  # fits exactly in 4 sequences of 256
    rows = pack(lengths, 256)
    assert sorted(i for row in rows for i in row) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in row) <= 256 for row in rows)
    assert len(rows) == 4


def test_pack_spreads_examples_evenly_over_the_fewest_sequences() -> None:
    lengths = [random.Random(i).randint(60, 256) for i in range(80)]
    rows = pack(lengths, 768)
    loads = sorted(sum(lengths[i] for i in row) for row in rows)
    assert sorted(i for row in rows for i in row) == list(range(len(lengths)))
    assert len(rows) <= math.ceil(sum(lengths) / 768) + 1 and loads[-1] <= 768  # best fit: near the bound
    # even fill: however the sequences are batched and padded to the longest, >= 95 % real tokens
    assert sum(loads) / (len(rows) * loads[-1]) >= 0.95, loads


def test_per_sample_loss_packed_equals_unpacked(tiny: tuple) -> None:
    model, tok = tiny
    examples = [encode(r, tok, 64) for r in _records()]
    padded = per_sample_loss(model, examples, tok.pad_token_id, batch_size=5, packing=False)
    packed = per_sample_loss(model, examples, tok.pad_token_id, batch_size=5, packing=True)
    alone = [per_sample_loss(model, [e], tok.pad_token_id, batch_size=1)[0] for e in examples]
    assert len(set(padded)) == len(padded)  # distinct examples, distinct losses
    assert packed == pytest.approx(padded, abs=1e-4)
    assert packed == pytest.approx(alone, abs=1e-4)


def test_packed_training_loss_equals_padded(tiny: tuple) -> None:
    """The batch loss the Trainer optimises is the same with and without packing."""
    model, tok = tiny
    rows = [{"input_ids": e.input_ids, "labels": e.labels} for e in (encode(r, tok, 64) for r in _records())]
    with torch.no_grad():
        padded = model(**Collator(tok.pad_token_id)(rows)).loss
        examples = [encode(r, tok, 64) for r in _records()]
        packed = model(**PackedCollator(tok.pad_token_id)([packed_row(examples[:2]), packed_row(examples[2:])])).loss
    assert packed.item() == pytest.approx(padded.item(), abs=1e-5)


@pytest.mark.parametrize("packed", [False, True])
def test_response_only_loss_equals_the_models_loss(tiny: tuple, packed: bool) -> None:
    model, tok = tiny
    examples = [encode(r, tok, 64) for r in _records()]
    if packed:
        batch = PackedCollator(tok.pad_token_id)([packed_row(examples[:3]), packed_row(examples[3:])])
    else:
        batch = Collator(tok.pad_token_id)([{"input_ids": e.input_ids, "labels": e.labels} for e in examples])
    with torch.no_grad():
        full = model(**batch).loss
        fast = response_only_loss(model, batch)
        n = int((batch["labels"][:, 1:] != IGNORE).sum())
        summed = response_only_loss(model, batch, num_items=2 * n)  # as under gradient accumulation
    assert fast.item() == pytest.approx(full.item(), abs=1e-5)
    assert summed.item() == pytest.approx(full.item() / 2, abs=1e-5)


def test_leak_across_examples_would_be_detected(tiny: tuple) -> None:
    """Control: the same packed row as one causal sequence (no position ids) changes per-sample losses."""
    model, tok = tiny
    examples = [encode(r, tok, 64) for r in _records()]
    flat = PackedCollator(tok.pad_token_id)([packed_row(examples)])
    segments = torch.tensor([[i for i, e in enumerate(examples) for _ in e.input_ids]])
    with torch.no_grad():
        logits = model(input_ids=flat["input_ids"], use_cache=False).logits
    leaky = _segment_losses(logits, flat["labels"], segments, len(examples))
    padded = per_sample_loss(model, examples, tok.pad_token_id, batch_size=5)
    assert leaky[0] == pytest.approx(padded[0], abs=1e-4)  # the first example sees nothing before it
    assert max(abs(a - b) for a, b in zip(leaky[1:], padded[1:], strict=True)) > 1e-3


def test_real_token_fraction() -> None:
    assert real_token_fraction([4, 2, 3, 3], batch_size=2) == pytest.approx(12 / 14)
