"""Generate component: `sources` -> `pairs` (a true and a false response per question)."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Output

from faco import images


@dsl.component(base_image=images.CPU.ref, install_kfp_package=False)
def generate(config_yaml: str, sources: Input[Dataset], pairs: Output[Dataset]):
    from pathlib import Path

    from faco.config import parse_config
    from faco.stages import generate as stage

    stage.run(parse_config(config_yaml, "config_yaml"), Path(sources.path), Path(pairs.path))
