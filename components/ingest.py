"""Ingest component: source datasets -> a `sources` Dataset."""

from kfp import dsl
from kfp.dsl import Dataset, Output

from faco import images


@dsl.component(base_image=images.CPU.ref, install_kfp_package=False)
def ingest(config_yaml: str, sources: Output[Dataset]):
    from pathlib import Path

    from faco.config import parse_config
    from faco.stages import ingest as stage

    stage.run(parse_config(config_yaml, "config_yaml"), Path(sources.path))
