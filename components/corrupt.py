"""Corrupt component: `pairs` -> `splits` (one training split per corruption ratio)."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Output

from faco import images


@dsl.component(base_image=images.CPU.ref, install_kfp_package=False)
def corrupt(config_yaml: str, pairs: Input[Dataset], splits: Output[Dataset]):
    from pathlib import Path

    from faco.config import parse_config
    from faco.stages import corrupt as stage

    stage.run(parse_config(config_yaml, "config_yaml"), Path(pairs.path), Path(splits.path))
