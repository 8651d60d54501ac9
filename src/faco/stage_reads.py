"""What each stage reads of a study config: the one declaration.

A stage's entry lists the config paths its output depends on: its own section, and single keys of
other sections (`section.key`) or top-level keys it also reads. Everything that must agree with
what a stage reads derives from this table: the config hash in every artifact's manifest
(`Study.section_hash`), the per-task config slices of the Kubeflow pipeline (`faco.config_slices`),
and the `params:` of each stage in dvc.yaml (tests/test_stage_reads.py fails when they drift).
"""

from __future__ import annotations

READS: dict[str, tuple[str, ...]] = {
    "ingest": ("ingest", "evaluate.benchmarks"),  # the contamination check against the study's benchmarks
    "generate": ("generate",),
    "corrupt": ("corrupt",),
    "train": ("train",),
    "evaluate": ("evaluate", "ingest.data_dir", "train.seed"),  # the offline mirror; the seed recorded for a model
    "judge": ("judge",),
    "audit": ("audit", "train", "analyze.bootstrap", "analyze.seed"),  # it trains; the detection intervals
    "analyze": ("analyze",),
    "report": ("report", "name", "description"),
}
