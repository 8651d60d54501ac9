"""Every detector's score against a hand computation on a tiny fixture; the per-sample measurements
against a plain forward pass of a tiny random llama; ranks and the ranking's order."""

from __future__ import annotations

import pytest
import torch

from faco.audit import ranking
from faco.audit.detectors import detectors, known
from faco.audit.inputs import AuditData, Base, Epoch
from faco.audit.items import AuditItem
from faco.records import TrainRecord


def _data() -> AuditData:
    items = [
        AuditItem(id="a", source="s", prompt="p", response="r", choices=["x", "y", "z"], assigned=0),
        AuditItem(id="b", source="s", prompt="p", response="r", choices=["x", "y", "z"], assigned=2),
        AuditItem(id="c", source="s", prompt="p", response="r"),  # free-form: no options
    ]
    dynamics = {
        "a": [Epoch(1, 1.0, 0.5, (-1.0, -2.0, -3.0)), Epoch(2, 0.5, 0.7, (-0.5, -2.0, -1.0))],
        "b": [Epoch(1, 2.0, 0.2, (-1.0, -2.0, -3.0)), Epoch(2, 1.5, 0.3, (-1.0, -2.5, -1.5))],
        "c": [Epoch(1, 3.0, 0.1), Epoch(2, 2.5, 0.4)],
    }
    heldout = {"a": Epoch(2, 0.9, 0.4, (-2.0, -1.0, -4.0)), "b": Epoch(2, 3.0, 0.1, (-1.0, -2.0, -0.5)),
               "c": Epoch(2, 4.0, 0.05)}
    base = {"a": Base(2.0, 4.0), "b": Base(3.0, 2.0), "c": Base(5.0, 5.0)}
    return AuditData(items, dynamics, heldout, base, {"a": 0.1, "b": 0.9, "c": 0.5})


def test_every_detector_by_hand() -> None:
    d = _data()
    assert known("loss").score(d) == {"a": 0.5, "b": 1.5, "c": 2.5}
    assert known("confidence").score(d) == pytest.approx({"a": 1 - 0.6, "b": 1 - 0.25, "c": 1 - 0.25})
    assert known("variability").score(d) == pytest.approx({"a": 0.1, "b": 0.05, "c": 0.15})  # std, ddof 0
    # a: margins (-1 - -2) = 1 and (-0.5 - -1) = 0.5 -> AUM 0.75; b (assigned z): (-3 - -1) = -2, (-1.5 - -1) = -0.5
    assert known("margin").score(d) == pytest.approx({"a": -0.75, "b": 1.25})
    # a's trained answer x (-2) loses to y (-1) under the held-out model: -(−2 − −1) = 1; b's z (-0.5) wins: -0.5
    assert known("heldout_margin").score(d) == pytest.approx({"a": 1.0, "b": -0.5})
    assert known("heldout_loss").score(d) == {"a": 0.9, "b": 3.0, "c": 4.0}
    assert known("ifd").score(d) == pytest.approx({"a": 0.5, "b": 1.5, "c": 1.0})
    assert known("loss_change").score(d) == pytest.approx({"a": 0.25, "b": 0.5, "c": 0.5})
    assert known("judge").score(d) == {"a": 0.1, "b": 0.9, "c": 0.5}
    assert set(detectors()) == {"loss", "confidence", "variability", "margin", "heldout_margin", "heldout_loss",
                                "ifd", "loss_change", "judge"}
    with pytest.raises(ValueError, match="unknown detector 'nope'; known: loss"):
        known("nope")


def test_until_an_epoch_and_usable_detectors() -> None:
    d = _data()
    assert known("loss").score(d.until(1)) == {"a": 1.0, "b": 2.0, "c": 3.0}
    assert known("margin").score(d.until(1)) == pytest.approx({"a": -1.0, "b": 2.0})
    assert d.epochs == [1, 2]
    bare = AuditData(d.items, d.dynamics)
    assert ranking.usable(bare, None) == ["loss", "confidence", "variability", "margin"]
    assert ranking.usable(AuditData([d.items[2]], {"c": d.dynamics["c"]}), ["margin", "loss"]) == ["loss"]


def test_folds_are_seeded_and_balanced() -> None:
    from faco.audit.fitting import folds

    ids = [f"x{i}" for i in range(11)]
    f = folds(ids, 2, seed=0)
    assert f == folds(list(reversed(ids)), 2, seed=0) and sorted(f.values()).count(0) == 6
    assert f != folds(ids, 2, seed=1) and set(folds(ids, 3, 0).values()) == {0, 1, 2}


def test_ranks_share_the_best_rank_on_ties_and_rows_follow_rank_by_then_loss() -> None:
    assert ranking.ranks({"a": 0.3, "b": 0.9, "c": 0.3, "d": 0.1}) == {"b": 1, "a": 2, "c": 2, "d": 4}
    d = _data()
    scored = ranking.score_all(d, ["margin", "loss"])
    rows = ranking.rows(d, scored, "margin")
    assert [r["id"] for r in rows] == ["b", "a", "c"]  # c has no margin: after (by heldout_loss, then loss)
    assert rows[0]["scores"] == {"margin": pytest.approx(1.25), "loss": 1.5}
    assert rows[0]["ranks"] == {"margin": 1, "loss": 2} and rows[2]["ranks"]["margin"] is None
    assert rows[0]["choices"] == ["x", "y", "z"] and rows[0]["assigned"] == 2 and "choices" not in rows[2]


def test_detections_per_epoch_and_at_the_end() -> None:
    d = _data()
    labelled = AuditData([it.model_copy(update={"is_corrupted": it.id == "b"}) for it in d.items], d.dynamics,
                         base=d.base)
    found = ranking.detections(labelled, ["loss", "ifd"], 50, 0, 0.25)
    assert [(f.detector, f.epoch) for f in found] == [("loss", 1), ("loss", None), ("ifd", None)]
    assert found[1].auroc.value == 0.5  # b's loss 1.5 is between a's and c's
    assert found[2].auroc.value == 1.0 and found[2].ratio == 0.25 and found[2].corrupted == 1


@pytest.fixture(scope="module")
def tiny() -> tuple[object, object]:
    from faco.config import ModelSpec, TinyModelSpec
    from faco.training.models import load_base

    texts = ["Facts: plants need light.\nQuestion: what do plants need?", "Answer: light", "Answer: dark"] * 20
    spec = ModelSpec(source="tiny-random", tiny=TinyModelSpec(hidden_size=32, layers=2, heads=2, vocab_size=300))
    return load_base(spec, texts, seed=0)


def test_measurements_equal_a_plain_forward_pass(tiny: tuple[object, object]) -> None:
    from faco.training.data import encode, per_sample_loss, prompt_text
    from faco.training.dynamics import Tracked, measure

    model, tok = tiny
    rec = TrainRecord(id="q", source="s", domain="knowledge", prompt="Facts: plants need light.\nQuestion: what?",
                      response="Because of the facts.\nAnswer: light", is_corrupted=False)
    longer = rec.model_copy(update={"id": "r", "prompt": rec.prompt * 3, "response": "Answer: dark"})
    got, other = measure(model, tok, [Tracked(rec, ("light", "dark")), Tracked(longer)], 128, "test")
    assert other["id"] == "r" and other["options"] == []
    assert other["loss"] == pytest.approx(per_sample_loss(model, [encode(longer, tok, 128)], tok.pad_token_id)[0],
                                          abs=1e-5)
    ex = encode(rec, tok, 128)
    assert got["loss"] == pytest.approx(per_sample_loss(model, [ex], tok.pad_token_id)[0], abs=1e-5)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ex.input_ids])).logits[0].float()  # type: ignore[operator]
    logp = torch.log_softmax(logits[:-1], -1)[torch.arange(len(ex.input_ids) - 1), torch.tensor(ex.input_ids[1:])]
    scored = torch.tensor(ex.labels[1:]) != -100
    assert got["confidence"] == pytest.approx(float(logp[scored].exp().mean()), abs=1e-5)
    ctx = tok(prompt_text(tok, rec.prompt), add_special_tokens=False)["input_ids"]  # type: ignore[operator]
    for option, ll in zip(("light", "dark"), got["options"], strict=True):
        cont = tok(f"Answer: {option}", add_special_tokens=False)["input_ids"]  # type: ignore[operator]
        with torch.no_grad():
            full = torch.log_softmax(model(input_ids=torch.tensor([ctx + cont])).logits[0].float(), -1)  # type: ignore[operator]
        want = sum(float(full[len(ctx) - 1 + j, t]) for j, t in enumerate(cont))
        assert ll == pytest.approx(want, abs=1e-4)
