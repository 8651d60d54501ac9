"""A ratio has one exact, injective name (cr_<decimal>), and the config refuses what would blur it."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from faco.errors import EXIT_CONFIG
from faco.ratios import check_ratio, parse_tag, ratio_tag
from faco.records import TrainRecord, read_jsonl

FACO = str(Path(sys.executable).with_name("faco"))
SMOKE = str(Path(__file__).resolve().parents[1] / "configs" / "smoke.yaml")


def test_names_are_exact_and_injective() -> None:
    rng = random.Random(0)
    ratios = [0.0, 1.0, 0.25, 0.125, 1e-9, 1 - 1e-16, 5e-324, 0.1 + 0.2, *(rng.random() for _ in range(2000))]
    names = {ratio_tag(r): r for r in ratios}
    assert len(names) == len(set(ratios))  # no two ratios share a name
    assert all(parse_tag(name) == r for name, r in names.items())  # every name parses back exactly
    assert [ratio_tag(r) for r in (0.0, 0.25, 1.0)] == ["cr_0.0", "cr_0.25", "cr_1.0"]


@pytest.mark.parametrize("value", [True, False, 1, 0, -0.0, float("nan"), 1.5, -0.25, "0.5", None])
def test_what_is_not_a_ratio_is_refused(value: object) -> None:
    with pytest.raises(ValueError, match="ratio must be"):
        check_ratio(value)


@pytest.mark.parametrize("name", ["cr_000", "cr_0.50", "cr_-0.0", "cr_1.5", "cr_nan", "0.5", "cr_0.5x"])
def test_what_is_not_a_name_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="not a ratio's name"):
        parse_tag(name)


def _faco(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FACO_CACHE_DIR": str(cwd / ".cache")}
    return subprocess.run([FACO, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize(("ratios", "says"), [
    ("[0.0, 1.0]", None),
    ("[0.0, true, 1.0]", "corrupt.ratios.1: ratio must be a decimal number in [0, 1] (got True)"),
    ("[0, 0.5, 1.0]", "corrupt.ratios.0: ratio must be a decimal number in [0, 1] (got 0; write 0.0)"),
    ("[-0.0, 1.0]", "corrupt.ratios.0: ratio must be in [0, 1] (got -0.0)"),
])
def test_validate_refuses_a_ratio_that_would_blur_its_name(tmp_path: Path, ratios: str, says: str | None) -> None:
    proc = _faco("validate", SMOKE, "--set", f"corrupt.ratios={ratios}", cwd=tmp_path)
    if says is None:
        assert proc.returncode == 0, proc.stderr
        return
    assert proc.returncode == EXIT_CONFIG, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].endswith(says), proc.stderr


def test_a_tiny_ratio_gets_its_own_split_and_the_clean_split_stays_clean(tmp_path: Path) -> None:
    """corrupt.ratios [0.0, 1e-9, 1.0]: three files; the 1e-9 split never lands on the clean one."""
    sets = ["--set", "corrupt.ratios=[0.0, 1.0e-9, 1.0]", "--set", "ingest.per_source_cap=4"]
    for args in (["ingest", SMOKE, "--out", "ingest"], ["generate", SMOKE, "--sources", "ingest", "--out", "pairs"],
                 ["corrupt", SMOKE, "--pairs", "pairs", "--out", "splits"]):
        proc = _faco(*args, *sets, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
    splits = tmp_path / "splits"
    assert sorted(p.name for p in splits.glob("cr_*.jsonl")) == ["cr_0.0.jsonl", "cr_1.0.jsonl", "cr_1e-09.jsonl"]
    clean = list(read_jsonl(splits / "cr_0.0.jsonl", TrainRecord))
    tiny = list(read_jsonl(splits / "cr_1e-09.jsonl", TrainRecord))
    assert clean and not any(r.is_corrupted for r in clean)
    assert sum(r.is_corrupted for r in tiny) == 1  # ⌈1e-9 · N⌉
    stats = json.loads((splits / "stats.json").read_text())
    assert sorted(stats) == ["cr_0.0", "cr_1.0", "cr_1e-09"]
