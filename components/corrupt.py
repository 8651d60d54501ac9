"""Corrupt component: `pairs` -> `splits` (one training split per corruption ratio)."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Output

from faco import images


@dsl.component(base_image=images.CPU.ref, install_kfp_package=False)
def corrupt(config_yaml: str, pairs: Input[Dataset], splits: Output[Dataset]):
    """Build one training split per corruption ratio (cumulative: the false items of a lower ratio stay).

    Args:
        config_yaml: This task's slice of the resolved config (plan's output `corrupt_config`).
        pairs: The generate stage's pairs.
        splits: One training split per ratio of `corrupt.ratios`.
    """
    from pathlib import Path

    from faco.config_slices import load
    from faco.stages import corrupt as stage

    stage.run(load(config_yaml), Path(pairs.path), Path(splits.path))
