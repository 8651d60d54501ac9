"""What training will need, checked before any work (`faco.training.preflight`).

The refusals are exercised through the installed `faco` in tests/test_bad_inputs.py; here: every
shipped config passes, a real model folder passes and each way of breaking one is named, and
`faco validate` keeps stdout for its result while the libraries it loads print.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from faco.config import Study, load_config
from faco.errors import ConfigError
from faco.stages import corrupt, train
from faco.training import preflight

FACO = str(Path(sys.executable).with_name("faco"))
SHIPPED = ["smoke.yaml", "mini.yaml", "faco-paper.yaml", "thresholds.yaml", "thresholds-cpu.yaml", "nli-synthetic.yaml",
           "nli-synthetic-cpu.yaml"]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_configs_pass(root: Path, name: str) -> None:
    preflight.check_training(load_config(root / "configs" / name), name)


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory: pytest.TempPathFactory, smoke: Study, smoke_pairs: Path) -> Path:
    base = tmp_path_factory.mktemp("preflight")
    splits = corrupt.run(smoke, smoke_pairs, base / "splits")
    data = smoke.model_dump(mode="json")
    data["train"].update(epochs=1, save_every_epoch=False)
    return train.run(Study.model_validate(data), splits, 0.0, base / "m") / "model"


def _local(smoke: Study, folder: Path, **train: object) -> Study:
    data = smoke.model_dump(mode="json")
    data["train"].update(model={"source": "local", "name_or_path": str(folder)}, **train)
    return Study.model_validate(data)


def test_a_trained_model_folder_passes_and_its_breakages_are_named(
        tmp_path: Path, smoke: Study, model_folder: Path) -> None:
    preflight.check_training(_local(smoke, model_folder, lora={"target_modules": ["q_proj", "v_proj"]}))
    broken = {
        "config.json": "holds no model (no config.json)",
        "model.safetensors": "holds no weights",
        "tokenizer.json": "holds no tokenizer",
    }
    for name, problem in broken.items():
        copy = tmp_path / name
        shutil.copytree(model_folder, copy)
        (copy / name).unlink()
        for extra in ("tokenizer_config.json",) if name == "tokenizer.json" else ():
            (copy / extra).unlink()
        assert problem in (preflight.model_folder_problem(copy) or ""), name
        with pytest.raises(ConfigError, match=re.escape(f"train.model.name_or_path: {copy}: {problem}")):
            preflight.check_training(_local(smoke, copy))
    cut = tmp_path / "cut"
    shutil.copytree(model_folder, cut)
    weights = cut / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1])
    assert (preflight.safetensors_problem(weights) or "").startswith("truncated (")


def test_validate_prints_only_its_result_on_stdout(root: Path, tmp_path: Path) -> None:
    proc = subprocess.run([FACO, "validate", str(root / "configs" / "smoke.yaml")], capture_output=True, text=True,
                          cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout == (f"{root / 'configs' / 'smoke.yaml'}: ok (study 'smoke', 5 sources, "
                           "ratios [0.0, 0.25, 0.5, 0.75, 1.0], 4 benchmarks)\n")
