"""Synthetic labels from a local model (paper 002): the model picks the option whose answer line it scores
highest, then explains that label; the pairs and the generate manifest name who labelled."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_generation import records

from faco.config import GenerateConfig, ModelSpec
from faco.generation.backends import answer_line
from faco.generation.cache import ChainCache
from faco.generation.chains import chain_request, plan
from faco.generation.local_backend import TransformersBackend
from faco.generation.pairs import build_pairs
from faco.generation.runner import Generator
from faco.generation.select import get_backend
from faco.records import PairRecord, read_jsonl
from faco.training.models import tiny_model

ROOT = Path(__file__).resolve().parents[1]
FACO = str(Path(sys.executable).parent / "faco")


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tiny")
    model, tok = tiny_model(ModelSpec(source="tiny-random"), ["Premise: a man sleeps. Answer: (A) yes"] * 20, 0)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def _cfg(tiny: Path) -> GenerateConfig:
    return GenerateConfig(backend="transformers", model=str(tiny), false_chain="synthetic", max_tokens=6,
                          batch_size=4)


def test_the_label_is_the_models_most_likely_answer_line(tiny_dir: Path, tmp_path: Path) -> None:
    recs, cfg = records(6), _cfg(tiny_dir)
    pairs, rejects = build_pairs(recs, Generator(get_backend(cfg), ChainCache(tmp_path / "c.sqlite")), cfg)
    assert len(pairs) + len(rejects) == 6 and pairs
    for p in pairs:
        scores = json.loads(p.generator["option_logprobs"])
        assert len(scores) == len(p.choices)
        assert p.false.answer_index == max(range(len(scores)), key=scores.__getitem__)
        assert p.false.answer == p.choices[p.false.answer_index]
        assert (p.generator["labeller"], p.generator["label_method"]) == (
            f"model {tiny_dir}", "answer-line log-likelihood")
        if p.false.answer_index == p.answer_index:  # labelled like the gold label: the true chain itself
            assert p.false.reasoning == p.true.reasoning


def test_option_scores_equal_a_plain_forward_pass(tiny_dir: Path) -> None:
    """The cached-prompt scoring gives each answer line's summed log-probability under the model."""
    backend = TransformersBackend(_cfg(tiny_dir))
    items, _ = plan(records(2), 0, "synthetic")
    req = chain_request(items[0], "false", "faco-v1", 0, "synthetic")
    scores = backend.option_scores([req])[0]
    tok, lm = backend._tok, backend._lm
    ctx = tok(backend._text(req.prompt), add_special_tokens=False)["input_ids"]
    for i, option in enumerate(req.choices):
        cont = tok(answer_line(i, option), add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logp = torch.log_softmax(lm(input_ids=torch.tensor([ctx + cont])).logits[0].float(), dim=-1)
        expected = sum(float(logp[len(ctx) - 1 + t, tok_id]) for t, tok_id in enumerate(cont))
        assert scores[i] == pytest.approx(expected, abs=1e-3)


def _generate(tmp_path: Path, *sets: str) -> tuple[dict, list[PairRecord], str]:
    config = str(ROOT / "configs" / "nli-synthetic-cpu.yaml")
    cap = ["--set", "ingest.per_source_cap=4"]
    ing = subprocess.run([FACO, "ingest", config, "--out", str(tmp_path / "i"), *cap], capture_output=True, text=True)
    assert ing.returncode == 0, ing.stderr
    args = [a for s in (*sets, f"generate.cache_path={tmp_path / 'c.sqlite'}") for a in ("--set", s)]
    proc = subprocess.run([FACO, "generate", config, "--sources", str(tmp_path / "i"), "--out", str(tmp_path / "g"),
                           *cap, *args], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    meta = json.loads((tmp_path / "g" / "manifest.json").read_text())["meta"]
    return meta, list(read_jsonl(tmp_path / "g" / "pairs.jsonl", PairRecord)), proc.stderr


def test_faco_generate_names_the_model_labeller(tiny_dir: Path, tmp_path: Path) -> None:
    meta, pairs, err = _generate(tmp_path, "generate.backend=transformers", f"generate.model={tiny_dir}",
                                 "generate.max_tokens=4")
    assert (meta["labeller"], meta["label_method"]) == (f"model {tiny_dir}", "answer-line log-likelihood")
    assert f"synthetic labels by model {tiny_dir} (answer-line log-likelihood)" in err
    assert pairs and all(p.generator["labeller"] == meta["labeller"] for p in pairs)


def test_faco_generate_names_the_rule_without_a_model(tmp_path: Path) -> None:
    meta, pairs, err = _generate(tmp_path, "generate.backend=template", "generate.model=template-v1")
    assert meta["labeller"] == "rule: word-overlap" and "synthetic labels by rule: word-overlap" in err
    assert pairs and all("option_logprobs" not in p.generator for p in pairs)


def test_synthetic_labels_generate_parses_the_models_own_reply(tiny_dir: Path, tmp_path: Path) -> None:
    cfg = _cfg(tiny_dir).model_copy(update={"synthetic_labels": "generate"})
    pairs, rejects = build_pairs(records(6), Generator(get_backend(cfg), ChainCache(tmp_path / "c.sqlite")), cfg)
    assert len(pairs) + len(rejects) == 6
    # The tiny random model's replies mostly name no option: rejected as such, never scored instead.
    assert all("chooses no option" in r.reason for r in rejects)
    for p in pairs:
        assert p.generator["label_method"] == "the answer line of its own reply"
        assert "option_logprobs" not in p.generator
