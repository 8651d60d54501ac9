"""Audit component: a split of a `splits` artifact -> the `audit` artifact (ranking, detector scores, summary)."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Output

from faco import images


@dsl.component(base_image=images.TRAIN.ref, install_kfp_package=False)
def audit(config_yaml: str, splits: Input[Dataset], ratio: float, audited: Output[Artifact]):
    """Train on the split of `ratio` while recording every sample's dynamics, score every sample with the
    detectors and rank them (docs/audit.md); one process.

    Args:
        config_yaml: The study config (its train, audit and analyze sections are read).
        splits: A splits artifact (the corrupt stage's, or a cleaned one).
        ratio: Corruption ratio of the split to audit.
        audited: The audit artifact (ranking.jsonl, detection.json with labels, summary.md, cartography.png).
    """
    from pathlib import Path

    from faco.config_slices import load
    from faco.ratios import split_path
    from faco.stages import audit as stage

    stage.run(load(config_yaml), split_path(Path(splits.path), ratio), Path(audited.path))
