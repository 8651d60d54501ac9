"""The train stage on the smoke split: artifacts, packing, LoRA, per-epoch checkpoints, resume, recovery."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from crash import Crash
from transformers import AutoModelForCausalLM, AutoTokenizer

from faco import artifacts
from faco.config import Study
from faco.errors import FacoError
from faco.ratios import split_path
from faco.records import TrainRecord, read_jsonl
from faco.stages import corrupt, train
from faco.training.data import encode, per_sample_loss
from faco.training.loop import batch_plan, precision, work_dir_for


@pytest.fixture(scope="module")
def splits(tmp_path_factory: pytest.TempPathFactory, smoke_pairs: Path, smoke: Study) -> Path:
    return corrupt.run(smoke, smoke_pairs, tmp_path_factory.mktemp("train") / "splits")


def _study(smoke: Study, **train_overrides: Any) -> Study:
    data = smoke.model_dump(mode="json")
    data["train"].update(train_overrides)
    return Study.model_validate(data)


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return AutoModelForCausalLM.from_pretrained(folder).state_dict()


def test_batch_plan_derives_accumulation_and_rejects_indivisible(smoke: Study) -> None:
    cfg = _study(smoke, global_batch_size=16, per_device_batch_size=4).train
    assert batch_plan(cfg, 1) == (4, 4)
    assert batch_plan(cfg, 2) == (4, 2)
    assert batch_plan(cfg, 8) == (2, 1)  # a process's share is smaller than the per-device batch
    with pytest.raises(FacoError, match=r"global_batch_size \(16\) is not divisible by the world size \(3\)"):
        batch_plan(cfg, 3)
    odd = _study(smoke, global_batch_size=12, per_device_batch_size=4).train
    with pytest.raises(FacoError, match=r"per_device_batch_size \(4\) x world size \(2\)"):
        batch_plan(odd, 2)


def test_precision_by_device(smoke: Study) -> None:
    expected = "bf16" if torch.cuda.is_available() else "fp32"
    assert precision(smoke.train) == expected
    assert precision(_study(smoke, precision="bf16").train) == "bf16"


def test_full_finetune_with_packing_and_epoch_checkpoints(tmp_path: Path, splits: Path, smoke: Study) -> None:
    study = _study(smoke, packing=True, save_every_epoch=True, max_seq_len=512)
    out = train.run(study, splits, 0.5, tmp_path / "m")
    assert artifacts.verify(out) == []
    assert not work_dir_for(out).exists()  # resumable state is removed once the artifact is complete
    stats = json.loads((out / "train_stats.json").read_text())
    assert stats["packing"] is True and stats["sequences"] < stats["examples"]
    assert 0.9 < stats["real_token_fraction"] <= 1.0
    assert stats["precision"] == "fp32" and stats["parameters"] > 0
    records = {r.id: r for r in read_jsonl(split_path(splits, 0.5), TrainRecord)}
    rows = _rows(out / "sample_loss.jsonl")
    assert [r["epoch"] for r in rows] == [1] * len(records) + [2] * len(records)
    assert all(records[r["id"]].is_corrupted == r["is_corrupted"] for r in rows)
    losses = _rows(out / "loss.jsonl")
    assert losses and losses[-1]["epoch"] == pytest.approx(2.0)
    final = _weights(out / "model")
    assert sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(out / "model").parameters()) \
        == stats["parameters"]
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["epoch_1", "epoch_2"]
    last, first = _weights(out / "checkpoints" / "epoch_2"), _weights(out / "checkpoints" / "epoch_1")
    assert all(torch.equal(final[k], last[k]) for k in final)
    assert any(not torch.equal(final[k], first[k]) for k in final)
    # the epoch-2 sample losses are those of the saved model, computed padded (no packing)
    tok = AutoTokenizer.from_pretrained(out / "model")
    model = AutoModelForCausalLM.from_pretrained(out / "model")
    examples = [encode(records[r["id"]], tok, study.train.max_seq_len) for r in rows[len(records):]]
    again = per_sample_loss(model, examples, tok.pad_token_id)
    assert again == pytest.approx([r["loss"] for r in rows[len(records):]], abs=1e-4)


def test_lora_is_merged_into_a_plain_model(tmp_path: Path, splits: Path, smoke: Study) -> None:
    study = _study(smoke, epochs=1, learning_rate=5e-3,
                   lora={"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]})
    out = train.run(study, splits, 0.0, tmp_path / "lora")
    state = _weights(out / "model")
    assert not any("lora" in k for k in state)
    stats = json.loads((out / "train_stats.json").read_text())
    assert stats["lora"] is True
    # the saved (merged) model reproduces the losses the adapter model had at the end of training
    records = list(read_jsonl(split_path(splits, 0.0), TrainRecord))
    tok = AutoTokenizer.from_pretrained(out / "model")
    model = AutoModelForCausalLM.from_pretrained(out / "model")
    logged = {r["id"]: r["loss"] for r in _rows(out / "sample_loss.jsonl")}
    again = per_sample_loss(model, [encode(r, tok, study.train.max_seq_len) for r in records], tok.pad_token_id)
    assert again == pytest.approx([logged[r.id] for r in records], abs=1e-4)
    # ... and the adapters changed something: the same run without training differs
    base = _study(smoke, epochs=1, learning_rate=1e-12, lora=study.train.lora.model_dump())
    still = train.run(base, splits, 0.0, tmp_path / "base")
    before = _weights(still / "model")
    assert any(not torch.allclose(state[k], before[k], atol=1e-6) for k in state if "q_proj" in k)
    assert all(torch.allclose(state[k], before[k]) for k in state if "k_proj" in k)


def test_killed_run_resumes_to_the_same_result(tmp_path: Path, splits: Path, smoke: Study) -> None:
    # 39 examples, batch 8: 5 steps per epoch; checkpoints every 2 steps; killed at step 7 (epoch 2)
    study = _study(smoke, checkpoint_steps=2, global_batch_size=8, per_device_batch_size=4)
    whole = train.run(study, splits, 0.25, tmp_path / "whole")
    out, work = tmp_path / "resumed", tmp_path / "work"
    with pytest.raises(KeyboardInterrupt):
        train.run(study, splits, 0.25, out, work_dir=work, callbacks=[Crash(7)])
    assert not out.exists() and (work / "trainer" / "checkpoint-6").is_dir()
    train.run(study, splits, 0.25, out, work_dir=work)
    assert json.loads((out / "train_stats.json").read_text())["resumed_from"] == "checkpoint-6"
    a, b = _rows(whole / "loss.jsonl"), _rows(out / "loss.jsonl")
    assert [r["step"] for r in a] == [r["step"] for r in b] == list(range(1, 11))
    assert [r["loss"] for r in b] == pytest.approx([r["loss"] for r in a], abs=1e-5)
    sa, sb = _rows(whole / "sample_loss.jsonl"), _rows(out / "sample_loss.jsonl")
    assert [r["id"] for r in sa] == [r["id"] for r in sb]
    assert [r["loss"] for r in sb] == pytest.approx([r["loss"] for r in sa], abs=1e-5)
    wa, wb = _weights(whole / "model"), _weights(out / "model")
    assert all(torch.allclose(wa[k], wb[k], atol=1e-5) for k in wa)


def test_killed_after_a_checkpoint_on_an_epoch_end_keeps_that_epochs_outputs(
    tmp_path: Path, splits: Path, smoke: Study
) -> None:
    """A checkpoint on an epoch's last step is saved before the Trainer ends the epoch: a kill right
    after it must not lose that epoch's sample losses or snapshot (the resumed run starts the next epoch)."""
    # 39 examples, batch 8: 5 steps per epoch; a checkpoint every 5 steps lands on each epoch's end
    study = _study(smoke, epochs=2, checkpoint_steps=5, global_batch_size=8, per_device_batch_size=8,
                   save_every_epoch=True)
    whole = train.run(study, splits, 0.5, tmp_path / "whole")
    out, work = tmp_path / "resumed", tmp_path / "work"
    with pytest.raises(KeyboardInterrupt):
        train.run(study, splits, 0.5, out, work_dir=work, callbacks=[Crash(5, after_save=True)])
    train.run(study, splits, 0.5, out, work_dir=work)
    assert json.loads((out / "train_stats.json").read_text())["resumed_from"] == "checkpoint-5"
    sa, sb = _rows(whole / "sample_loss.jsonl"), _rows(out / "sample_loss.jsonl")
    assert [(r["epoch"], r["id"]) for r in sb] == [(r["epoch"], r["id"]) for r in sa]
    assert {r["epoch"] for r in sb} == {1, 2}
    assert [r["loss"] for r in sb] == pytest.approx([r["loss"] for r in sa], abs=1e-5)
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["epoch_1", "epoch_2"]
    wa, wb = _weights(whole / "checkpoints" / "epoch_1"), _weights(out / "checkpoints" / "epoch_1")
    assert all(torch.allclose(wa[k], wb[k], atol=1e-5) for k in wa)


def test_recovery_starts_from_the_model_artifact(tmp_path: Path, splits: Path, smoke: Study) -> None:
    study = _study(smoke, epochs=1)
    corrupted = train.run(study, splits, 1.0, tmp_path / "m100")
    recovered = train.run(study, splits, 0.0, tmp_path / "rec", start=corrupted)
    manifest = artifacts.read_manifest(recovered)
    assert manifest["meta"]["start_checkpoint"]["manifest_sha256"] == artifacts.manifest_hash(corrupted)
    assert manifest["meta"]["start_ratio"] == 1.0
    assert [p["path"] for p in manifest["parents"]] == [str(splits), str(corrupted)]
    assert json.loads((recovered / "train_stats.json").read_text())["epochs"] == smoke.train.recovery.epochs
    # training started from the corrupted model's weights, not from a fresh random model
    fresh = train.run(study, splits, 0.0, tmp_path / "fresh")
    first = {r["id"]: r["loss"] for r in _rows(recovered / "sample_loss.jsonl")}
    scratch = {r["id"]: r["loss"] for r in _rows(fresh / "sample_loss.jsonl")}
    assert any(abs(first[k] - scratch[k]) > 1e-3 for k in first)
