"""Config values the images can run: `train.deepspeed` names a DeepSpeed config shipped in the
package (`zero3`) or a JSON file by path, and `faco validate` fails on one that does not resolve,
from any working directory; `evaluate.backend: vllm`, which no image installs, is refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from faco import ds_config
from faco.training.loop import deepspeed_config

ROOT = Path(__file__).resolve().parents[1]
FACO = str(Path(sys.executable).parent / "faco")


def _faco(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([FACO, *args], cwd=cwd, capture_output=True, text=True, env=os.environ)


def test_the_paper_config_validates_from_another_directory(tmp_path: Path) -> None:
    """configs/faco-paper.yaml names `zero3`; it resolves from the package, not the working directory."""
    done = _faco(tmp_path, "validate", str(ROOT / "configs" / "faco-paper.yaml"))
    assert done.returncode == 0, done.stderr
    from faco.config import load_config

    cfg = load_config(ROOT / "configs" / "faco-paper.yaml").train
    path, stage = deepspeed_config(cfg)
    assert path == str(ds_config.CONFIG_DIR / "zero3.json") and stage == 3


@pytest.mark.parametrize(("name", "stage"), [("zero2", 2), ("zero3", 3), ("zero3_offload", 3)])
def test_every_shipped_name_resolves_to_its_stage(name: str, stage: int) -> None:
    assert ds_config.zero_stage(ds_config.resolve(name)) == stage
    assert name in ds_config.names()


def test_an_unknown_name_is_a_config_error_naming_the_key(tmp_path: Path) -> None:
    done = _faco(tmp_path, "validate", str(ROOT / "configs" / "smoke.yaml"), "--set", "train.deepspeed=zero4")
    assert done.returncode == 3
    (line,) = done.stderr.strip().splitlines()
    assert "train.deepspeed: zero4: no DeepSpeed config of that name; shipped: zero2, zero3, zero3_offload" in line


def test_a_path_resolves_against_the_working_directory(tmp_path: Path) -> None:
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "mine.json").write_text(json.dumps({"zero_optimization": {"stage": 2}}))
    smoke = str(ROOT / "configs" / "smoke.yaml")
    assert _faco(tmp_path, "validate", smoke, "--set", "train.deepspeed=ds/mine.json").returncode == 0
    missing = _faco(tmp_path, "validate", smoke, "--set", "train.deepspeed=ds/other.json")
    assert missing.returncode == 3 and "train.deepspeed: ds/other.json: no such file" in missing.stderr


def test_vllm_is_refused_naming_the_key(tmp_path: Path) -> None:
    done = _faco(tmp_path, "validate", str(ROOT / "configs" / "smoke.yaml"), "--set", "evaluate.backend=vllm")
    assert done.returncode == 3
    (line,) = done.stderr.strip().splitlines()
    assert line.endswith("evaluate.backend: vllm: no faco image installs vLLM; use hf (docs/evaluation.md, Backends)")
