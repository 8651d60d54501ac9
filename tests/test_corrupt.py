"""Corruption is exact and cumulative, and the flag never leaks into the text."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

from faco.artifacts import read_manifest
from faco.config import Study
from faco.ratios import ratio_tag, split_path
from faco.records import TrainRecord, read_jsonl
from faco.stages import corrupt


def _split(splits: Path, r: float) -> list[TrainRecord]:
    return list(read_jsonl(split_path(splits, r), TrainRecord))


def test_cumulative_exact_and_flag_outside_text(tmp_path: Path, smoke: Study, smoke_pairs: Path) -> None:
    splits = corrupt.run(smoke, smoke_pairs, tmp_path / "splits")
    n = sum(1 for _ in (smoke_pairs / "pairs.jsonl").open())
    bad_sets = []
    clean = {r.id: r for r in _split(splits, 0.0)}
    for r in smoke.corrupt.ratios:
        recs = _split(splits, r)
        assert len(recs) == n
        bad = {x.id for x in recs if x.is_corrupted}
        assert len(bad) == math.ceil(r * n)
        bad_sets.append(bad)
        for x in recs:
            assert "is_corrupted" not in x.prompt + x.response
            if not x.is_corrupted:
                assert x == clean[x.id]  # untouched items are identical across ratios
            else:
                assert x.response != clean[x.id].response
    for smaller, larger in itertools.pairwise(bad_sets):
        assert smaller < larger or (smaller == larger == set())
    stats = json.loads((splits / "stats.json").read_text())
    assert stats["cr_0.25"]["corrupted"] == math.ceil(0.25 * n)
    assert read_manifest(splits)["parents"][0]["kind"] == "pairs"


def test_order_is_seeded_and_independent_of_input_order() -> None:
    ids = [f"q{i}" for i in range(50)]
    assert corrupt.corruption_order(ids, 0) == corrupt.corruption_order(list(reversed(ids)), 0)
    assert corrupt.corruption_order(ids, 0) != corrupt.corruption_order(ids, 1)


def test_ratio_tags() -> None:
    assert [ratio_tag(r) for r in (0.0, 0.25, 1.0, 0.125)] == ["cr_0.0", "cr_0.25", "cr_1.0", "cr_0.125"]
