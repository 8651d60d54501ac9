"""Generate component: `sources` -> `pairs` (a true and a false response per question)."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Output

from faco import images


@dsl.component(base_image=images.CPU.ref, install_kfp_package=False)
def generate(config_yaml: str, sources: Input[Dataset], pairs: Output[Dataset]):
    """Generate a true and a false reasoning chain per question (the configured backend).

    Args:
        config_yaml: This task's slice of the resolved config (plan's output `generate_config`).
        sources: The ingest stage's records.
        pairs: The true/false response pairs, with the generation ledger.
    """
    from pathlib import Path

    from faco.config_slices import load
    from faco.stages import generate as stage

    stage.run(load(config_yaml), Path(sources.path), Path(pairs.path))
