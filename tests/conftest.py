"""Shared fixtures: the repo root, study configs, and one smoke study run shared by the session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from faco.config import Study, load_config

ROOT = Path(__file__).resolve().parents[1]

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def smoke() -> Study:
    return load_config(ROOT / "configs" / "smoke.yaml")


@pytest.fixture(scope="session")
def smoke_pairs(tmp_path_factory: pytest.TempPathFactory, smoke: Study) -> Path:
    """ingest + generate on the smoke config (seconds)."""
    from faco.stages import generate, ingest

    base = tmp_path_factory.mktemp("smoke")
    ingest.run(smoke, base / "ingest")
    return generate.run(smoke, base / "ingest", base / "pairs")
