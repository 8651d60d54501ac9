"""Analyze component (fan-in): every evaluation, training log and judged answer set -> the analysis
artifact and its KFP Metrics. It takes the small artifacts only: the loss logs, not the models."""

from kfp import dsl
from kfp.dsl import Artifact, Input, Metrics, Output

from faco import images


@dsl.component(base_image=images.CPU.ref, install_kfp_package=False)
def analyze(config_yaml: str, seeds: list, evaluations: Input[list[Artifact]], logs: Input[list[Artifact]],
            base_evaluation: Input[Artifact], analysis: Output[Artifact], metrics: Output[Metrics],
            judged: Input[list[Artifact]] = None, base_judged: Input[Artifact] = None,
            start_evaluations: Input[list[Artifact]] = None, start_logs: Input[list[Artifact]] = None,
            start_judged: Input[list[Artifact]] = None, recovered_evaluations: Input[list[Artifact]] = None,
            recovered_logs: Input[list[Artifact]] = None, recovered_judged: Input[list[Artifact]] = None):
    """Table 1, statistics, findings and figures, as `faco study` analyses the same runs.

    Args:
        config_yaml: This task's slice of the resolved config (plan's output `analyze_config`).
        seeds: The study's training seeds, in order (plan's output `seeds`).
        evaluations: The grid's evaluations (every ratio and seed, but the recovery start cells).
        logs: Those models' loss logs.
        base_evaluation: The evaluation of the untrained base model (the base row).
        analysis: The analysis artifact (analysis.json, table1.csv, metrics.json, figures/).
        metrics: Per benchmark `<benchmark>.<statistic>` from metrics.json (Pearson r and p, ABS, recovery).
        judged: The grid models' judged probe answers, when the config has a judge section.
        base_judged: The base model's judged probe answers, when the config has a judge section.
        start_evaluations: With recovery: the evaluations of each seed's train.recovery.from_ratio model.
        start_logs: With recovery: those models' loss logs.
        start_judged: With recovery and a judge: those models' judged answers.
        recovered_evaluations: With recovery: the evaluations of the recovered models.
        recovered_logs: With recovery: the recovered models' loss logs.
        recovered_judged: With recovery and a judge: the recovered models' judged answers.
    """
    from pathlib import Path

    from faco.kfp_glue import analyze as run

    def paths(*groups) -> list:  # type: ignore[no-untyped-def]
        return [Path(a.path) for group in groups if group is not None for a in group]

    logged = run(config_yaml, [int(s) for s in seeds],
                 paths(evaluations, [base_evaluation], start_evaluations, recovered_evaluations),
                 paths(logs, start_logs, recovered_logs),
                 paths(judged, [base_judged] if base_judged is not None else None, start_judged, recovered_judged),
                 Path(analysis.path))
    for name, value in logged.items():
        metrics.log_metric(name, value)
