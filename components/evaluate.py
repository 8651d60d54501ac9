"""Evaluate component: a Model -> an evaluation artifact, with each benchmark's score as a Metric."""

from kfp import dsl
from kfp.dsl import Artifact, Input, Metrics, Model, Output

from faco import images


@dsl.component(base_image=images.TRAIN.ref, install_kfp_package=False)
def evaluate(config_yaml: str, model: Input[Model], evaluation: Output[Artifact], metrics: Output[Metrics]):
    from pathlib import Path

    from faco.config import parse_config
    from faco.kfp_glue import scores
    from faco.stages import evaluate as stage

    out = stage.run(parse_config(config_yaml, "config_yaml"), Path(model.path), Path(evaluation.path))
    for bench, score in scores(out).items():
        metrics.log_metric(bench, score)
