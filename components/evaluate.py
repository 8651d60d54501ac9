"""Evaluate components: a Model -> an evaluation artifact, with each benchmark's score as a Metric.

`evaluate_untrusted` is the same step for configs whose evaluation runs model-written code; the
pipelines give its pod the no-network label and no Secrets, so it reads every benchmark dataset
from the artifact of `prefetch_benchmarks`, which runs once before it, with network and no model.
`evaluate_untrusted` is a separate component, not a flag, so that its executor never shares a
name with `evaluate`'s: kfp 2.17 merges the Kubernetes settings of nested pipelines' executors by
name before it renames colliding ones (`_merge_deployment_spec` calls `merge_platform_specs` inside
its renaming loop), so same-named executors in two nested pipelines would swap Secrets and labels.
No upstream issue found.
"""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output

from faco import images


@dsl.component(base_image=images.TRAIN.ref, install_kfp_package=False)
def evaluate(config_yaml: str, model: Input[Model], sources: Input[Dataset], evaluation: Output[Artifact],
             metrics: Output[Metrics], snapshots: Input[Artifact] = None):
    """Score a model on the configured benchmarks (lm-evaluation-harness).

    Args:
        config_yaml: This task's slice of the resolved config (plan's output `evaluate_config`).
        model: The model artifact to evaluate.
        sources: The ingest artifact: benchmark `heldout` asks its held-out questions.
        evaluation: Scores per benchmark with per-item results.
        metrics: Each benchmark's main score.
        snapshots: The model's epoch snapshots, scored too with evaluate.per_epoch (none: the base model).
    """
    from pathlib import Path

    from faco.kfp_glue import evaluate_model

    scores = evaluate_model(config_yaml, Path(model.path), Path(evaluation.path), sources=Path(sources.path),
                            snapshots=Path(snapshots.path) if snapshots is not None else None)
    for bench, score in scores.items():
        metrics.log_metric(bench, score)


@dsl.component(base_image=images.TRAIN.ref, install_kfp_package=False)
def evaluate_untrusted(config_yaml: str, model: Input[Model], sources: Input[Dataset], benchmarks: Input[Dataset],
                       evaluation: Output[Artifact], metrics: Output[Metrics], snapshots: Input[Artifact] = None):
    """`evaluate` for evaluations that run model-written code (faco's sandbox, no network): the
    benchmark datasets come from `benchmarks` (`prefetch_benchmarks`), read with the hub offline.

    Args:
        config_yaml: This task's slice of the resolved config (plan's output `evaluate_config`).
        model: The model artifact to evaluate.
        sources: The ingest artifact: benchmark `heldout` asks its held-out questions.
        benchmarks: The prefetched benchmark datasets (an HF datasets cache).
        evaluation: Scores per benchmark with per-item results.
        metrics: Each benchmark's main score.
        snapshots: The model's epoch snapshots, scored too with evaluate.per_epoch (none: the base model).
    """
    from pathlib import Path

    from faco.kfp_glue import evaluate_model

    scores = evaluate_model(config_yaml, Path(model.path), Path(evaluation.path), sources=Path(sources.path),
                            snapshots=Path(snapshots.path) if snapshots is not None else None,
                            benchmarks=Path(benchmarks.path))
    for bench, score in scores.items():
        metrics.log_metric(bench, score)


@dsl.component(base_image=images.CPU.ref, install_kfp_package=False)
def prefetch_benchmarks(config_yaml: str, benchmarks: Output[Dataset]):
    """Every configured benchmark's datasets (an HF datasets cache), fetched with network, no model.

    Args:
        config_yaml: This task's slice of the resolved config (plan's output `evaluate_config`).
        benchmarks: The benchmark datasets, for the no-network evaluate tasks.
    """
    from pathlib import Path

    from faco.kfp_glue import prefetch_benchmarks as fetch

    fetch(config_yaml, Path(benchmarks.path))
