"""Judge component (paper 001): a model -> its sampled probe answers scored by the configured judge."""

from kfp import dsl
from kfp.dsl import Artifact, Input, Model, Output

from faco import images


@dsl.component(base_image=images.TRAIN.ref, install_kfp_package=False)
def judge(config_yaml: str, model: Input[Model], judged: Output[Artifact]):
    """Sample `judge.samples` answers to each probe from the model and score them with the judge.

    Args:
        config_yaml: This task's slice of the resolved config (plan's output `judge_config`).
        model: The model artifact whose answers are judged.
        judged: The judged answers (judged.jsonl), the judge's ledger and a summary.
    """
    from pathlib import Path

    from faco.kfp_glue import judge_model

    judge_model(config_yaml, Path(model.path), Path(judged.path))
