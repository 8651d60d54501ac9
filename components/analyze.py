"""Analyze component (fan-in): all evaluations and models -> the analysis artifact and its KFP Metrics."""

from kfp import dsl
from kfp.dsl import Artifact, Input, Metrics, Model, Output

from faco import images


@dsl.component(base_image=images.CPU.ref, install_kfp_package=False)
def analyze(config_yaml: str, evaluations: Input[list[Artifact]], models: Input[list[Model]],
            analysis: Output[Artifact], metrics: Output[Metrics], recovery_evaluation: Input[Artifact] = None,
            recovery_model: Input[Model] = None):
    """Table 1, statistics and figures; the recovery run joins when given.

    Args:
        config_yaml: This task's slice of the resolved config (plan's output `analyze_config`).
        evaluations: One evaluation artifact per corruption ratio.
        models: The model artifacts of those evaluations (their training logs).
        analysis: The analysis artifact (analysis.json, table1.csv, metrics.json, figures/).
        metrics: Per benchmark `<benchmark>.<statistic>` from metrics.json (Pearson r and p, ABS, recovery).
        recovery_evaluation: The evaluation of the recovered model, when the study runs recovery.
        recovery_model: The recovered model, when the study runs recovery.
    """
    from pathlib import Path

    from faco.config_slices import load
    from faco.kfp_glue import analysis_metrics
    from faco.stages import analyze as stage

    evals = [Path(e.path) for e in evaluations]
    model_dirs = [Path(m.path) for m in models]
    if recovery_evaluation is not None and recovery_model is not None:
        evals.append(Path(recovery_evaluation.path))
        model_dirs.append(Path(recovery_model.path))
    stage.run(load(config_yaml), evals, model_dirs, Path(analysis.path))
    for name, value in analysis_metrics(Path(analysis.path)).items():
        metrics.log_metric(name, value)
