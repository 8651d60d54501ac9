"""Analyze component (fan-in): all evaluations and models -> the analysis artifact."""

from kfp import dsl
from kfp.dsl import Artifact, Input, Model, Output

from faco import images


@dsl.component(base_image=images.CPU.ref, install_kfp_package=False)
def analyze(config_yaml: str, evaluations: Input[list[Artifact]], models: Input[list[Model]],
            analysis: Output[Artifact], recovery_evaluation: Input[Artifact] = None,
            recovery_model: Input[Model] = None):
    """Table 1, statistics and figures; the recovery run joins when given."""
    from pathlib import Path

    from faco.config import parse_config
    from faco.stages import analyze as stage

    evals = [Path(e.path) for e in evaluations]
    model_dirs = [Path(m.path) for m in models]
    if recovery_evaluation is not None and recovery_model is not None:
        evals.append(Path(recovery_evaluation.path))
        model_dirs.append(Path(recovery_model.path))
    stage.run(parse_config(config_yaml, "config_yaml"), evals, model_dirs, Path(analysis.path))
