"""One declaration of what each stage reads (faco.stage_reads.READS): an artifact's config hash
changes exactly when something its stage reads changes, and the Kubeflow slices hold exactly that.
(dvc.yaml's `params:` are checked against it in tests/test_dvc.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from faco import config_slices
from faco.config import load_config
from faco.stage_reads import READS

#: one override that changes each path some stage reads
CHANGE = {
    "ingest": "ingest.seed=1", "evaluate.benchmarks": "evaluate.benchmarks=[{name: copa, shots: 0}]",
    "generate": "generate.seed=1", "corrupt": "corrupt.seed=1", "train": "train.learning_rate=0.5",
    "evaluate": "evaluate.batch_size=3", "ingest.data_dir": "ingest.data_dir=/elsewhere", "train.seed": "train.seed=1",
    "judge": "judge.samples=2", "analyze": "analyze.threshold_fraction=0.8", "analyze.seed": "analyze.seed=1",
    "analyze.bootstrap": "analyze.bootstrap=7", "audit": "audit={folds: 3}", "report": "report.title=Another",
    "name": "name=another", "description": "description=another",
}


def _reads(stage: str, path: str) -> bool:
    """Whether `stage` reads `path`: it names the path, or the section the path is in."""
    return any(path == p or path.partition(".")[0] == p for p in READS[stage])


def test_every_path_a_stage_reads_has_a_change() -> None:
    assert {p for paths in READS.values() for p in paths} == set(CHANGE)


@pytest.mark.parametrize("stage", sorted(READS))
def test_section_hash_changes_exactly_with_what_the_stage_reads(root: Path, stage: str) -> None:
    smoke = root / "configs" / "smoke.yaml"
    before = load_config(smoke).section_hash(stage)
    for path, override in CHANGE.items():
        after = load_config(smoke, overrides=[override]).section_hash(stage)
        assert (after != before) == _reads(stage, path), (stage, path)


def test_kfp_slices_hold_exactly_what_each_task_reads(root: Path) -> None:
    study = load_config(root / "configs" / "smoke.yaml")
    for task, text in config_slices.slices(study).items():
        data = yaml.safe_load(text)
        assert data.pop(config_slices.MARKER) == list(READS[task])
        held = {s if not isinstance(v, dict) or s in READS[task] else f"{s}.{k}"
                for s, v in data.items() for k in (v if isinstance(v, dict) and s not in READS[task] else [None])}
        assert held == set(READS[task]), task
