"""Ingest component: source datasets -> a `sources` Dataset."""

from kfp import dsl
from kfp.dsl import Dataset, Output

from faco import images


@dsl.component(base_image=images.CPU.ref, install_kfp_package=False)
def ingest(config_yaml: str, sources: Output[Dataset]):
    """Read the configured source datasets (offline mirror or the hub) into normalised records.

    Args:
        config_yaml: This task's slice of the resolved config (plan's output `ingest_config`).
        sources: The normalised records (sources.jsonl) with their lineage.
    """
    from pathlib import Path

    from faco.config_slices import load
    from faco.stages import ingest as stage

    stage.run(load(config_yaml), Path(sources.path))
