"""The corruption study: ingest -> generate -> corrupt -> per ratio [train -> evaluate] -> analyze -> report.

With `train.recovery` in the config, the model of `from_ratio` is also retrained on the clean
split and evaluated, and that run joins the analysis. When evaluation runs model-written code
(`plan`'s `untrusted_code`), the grid's variant whose evaluate tasks carry the no-network pod
label runs instead (a pod label is fixed at compile time, the config arrives at run time); those
tasks have no network, so `prefetch_benchmarks` fetches the benchmark data once before the loop.
"""

from typing import Any

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Model, PipelineTask
from kfp.dsl.graph_component import GraphComponent

from faco import images
from faco.components.analyze import analyze
from faco.components.corrupt import corrupt
from faco.components.evaluate import evaluate, evaluate_untrusted, prefetch_benchmarks
from faco.components.generate import generate
from faco.components.ingest import ingest
from faco.components.launch_training_job import launch_training_job
from faco.components.plan import plan, ratio_grid
from faco.components.report import report
from faco.components.train import recover, train
from faco.k8s.settings import ClusterSettings
from faco.pipelines import _tasks

NAME = "faco-corruption-study"


def _evaluate(s: ClusterSettings, config_yaml: Any, model: Any, benchmarks: Any = None) -> PipelineTask:
    """`evaluate`; with prefetched `benchmarks`, `evaluate_untrusted` (no-network label, no Secrets)."""
    if benchmarks is None:
        return _tasks.evaluator(evaluate(config_yaml=config_yaml, model=model), s)
    return _tasks.evaluator(evaluate_untrusted(config_yaml=config_yaml, model=model, benchmarks=benchmarks), s,
                            untrusted_code=True)


def build_finish(s: ClusterSettings, untrusted_code: bool = False) -> GraphComponent:
    """Fan-in: analyze and report, with the recovery run first when the config asks for it.

    A nested pipeline, because a `dsl.Collected` list of artifacts consumed inside a `dsl.If`
    does not compile in kfp 2.17 (TypeError in build_component_spec_for_group), while a
    condition inside a nested pipeline that receives the list does. Upstream tracks Collected
    with conditions in https://github.com/kubeflow/pipelines/issues/10050. The isolated variant
    also takes the prefetched benchmark data its recovery evaluation reads.
    """

    def body(config_yaml: Any, train_config: Any, evaluate_config: Any, analyze_config: Any, recovery: Any,
             splits: Any, evaluations: Any, models: Any, benchmarks: Any = None) -> None:
        with dsl.If(recovery == True):  # noqa: E712 - a KFP condition, not a Python test
            rec = _tasks.trainer(recover(config_yaml=train_config, splits=splits, models=models), s)
            rec_eval = _evaluate(s, evaluate_config, rec.outputs["model"], benchmarks)
            with_rec = _tasks.light(analyze(
                config_yaml=analyze_config, evaluations=evaluations, models=models,
                recovery_evaluation=rec_eval.outputs["evaluation"], recovery_model=rec.outputs["model"],
            ), s)
            _tasks.light(report(config_yaml=config_yaml, analysis=with_rec.outputs["analysis"]), s)
        with dsl.Else():
            plain = _tasks.light(analyze(config_yaml=analyze_config, evaluations=evaluations, models=models), s)
            _tasks.light(report(config_yaml=config_yaml, analysis=plain.outputs["analysis"]), s)

    if untrusted_code:
        @dsl.pipeline(name="faco-analyze-and-report-isolated")
        def finish_isolated(config_yaml: str, train_config: str, evaluate_config: str, analyze_config: str,
                            recovery: bool, splits: Dataset, evaluations: list[Artifact], models: list[Model],
                            benchmarks: Dataset):
            body(config_yaml, train_config, evaluate_config, analyze_config, recovery, splits, evaluations, models,
                 benchmarks)

        return finish_isolated

    @dsl.pipeline(name="faco-analyze-and-report")
    def finish(config_yaml: str, train_config: str, evaluate_config: str, analyze_config: str, recovery: bool,
               splits: Dataset, evaluations: list[Artifact], models: list[Model]):
        body(config_yaml, train_config, evaluate_config, analyze_config, recovery, splits, evaluations, models)

    return finish


def build_grid(s: ClusterSettings, untrusted_code: bool = False) -> GraphComponent:
    """Per ratio [train -> evaluate], then the fan-in; `untrusted_code`: evaluate tasks get the
    no-network label and read the benchmark data prefetched before the loop (input `benchmarks`).

    A nested pipeline iterating over its own input: in kfp.local (2.17), inside a ParallelFor over
    a task's output, other task-output arguments receive the loop item instead of their value
    (no upstream issue found; the symptom of the long-fixed https://github.com/kubeflow/pipelines/issues/2943).
    """
    finish = build_finish(s, untrusted_code)

    def body(config_yaml: Any, train_config: Any, evaluate_config: Any, analyze_config: Any, ratios: Any,
             recovery: Any, splits: Any, benchmarks: Any = None) -> None:
        # no `name=` on ParallelFor: it breaks dsl.Collected on the backend
        # (https://github.com/kubeflow/pipelines/issues/13239)
        with dsl.ParallelFor(ratios) as ratio:
            if s.multi_node.nodes > 1:
                tr = _tasks.launcher(launch_training_job(
                    config_yaml=train_config, splits=splits, ratio=ratio, settings_json=s.model_dump_json(),
                    image=images.TRAIN.ref, unique=dsl.PIPELINE_TASK_ID_PLACEHOLDER), s)
            else:
                tr = _tasks.trainer(train(config_yaml=train_config, splits=splits, ratio=ratio), s)
            ev = _evaluate(s, evaluate_config, tr.outputs["model"], benchmarks)
        fan_in = {"config_yaml": config_yaml, "train_config": train_config, "evaluate_config": evaluate_config,
                  "analyze_config": analyze_config, "recovery": recovery, "splits": splits,
                  "evaluations": dsl.Collected(ev.outputs["evaluation"]), "models": dsl.Collected(tr.outputs["model"])}
        finish(**fan_in) if benchmarks is None else finish(**fan_in, benchmarks=benchmarks)

    if untrusted_code:
        @dsl.pipeline(name="faco-ratio-grid-isolated")
        def grid_isolated(config_yaml: str, train_config: str, evaluate_config: str, analyze_config: str,
                          ratios: list[float], recovery: bool, splits: Dataset, benchmarks: Dataset):
            body(config_yaml, train_config, evaluate_config, analyze_config, ratios, recovery, splits, benchmarks)

        return grid_isolated

    @dsl.pipeline(name="faco-ratio-grid")
    def grid(config_yaml: str, train_config: str, evaluate_config: str, analyze_config: str, ratios: list[float],
             recovery: bool, splits: Dataset):
        body(config_yaml, train_config, evaluate_config, analyze_config, ratios, recovery, splits)

    return grid


def build(s: ClusterSettings | None = None) -> GraphComponent:
    """The corruption-study pipeline for these cluster settings."""
    s = s or ClusterSettings()
    grid, isolated_grid = build_grid(s), build_grid(s, untrusted_code=True)

    @dsl.pipeline(name=NAME, description="FACO corruption study: share of false SFT data vs scores.")
    def corruption_study(config_yaml: str, ratios: list[float] = [], overrides: list[str] = []):  # noqa: B006
        """config_yaml: the study config text; ratios: corruption ratios (empty: the config's);
        overrides: KEY=VALUE config overrides, e.g. train.seed=1."""
        p = _tasks.light(plan(config_yaml=config_yaml, ratios=ratios, overrides=overrides), s)
        out = p.outputs  # each task gets only its config slice, so KFP's cache sees only what it reads
        src = _tasks.secrets(_tasks.light(ingest(config_yaml=out["ingest_config"]), s),
                             s.secrets.huggingface, s.secrets.s3)
        pairs = _tasks.generator(generate(config_yaml=out["generate_config"], sources=src.outputs["sources"]), s)
        splits = _tasks.light(corrupt(config_yaml=out["corrupt_config"], pairs=pairs.outputs["pairs"]),
                              s).outputs["splits"]
        ratio_list = _tasks.light(ratio_grid(config_yaml=out["corrupt_config"]), s).output
        grid_args = {"config_yaml": out["config_yaml"], "train_config": out["train_config"],
                     "evaluate_config": out["evaluate_config"], "analyze_config": out["analyze_config"],
                     "ratios": ratio_list, "recovery": out["recovery"], "splits": splits}
        with dsl.If(out["untrusted_code"] == True):  # noqa: E712 - a KFP condition
            # benchmark data fetched once, with network, for the no-network evaluate tasks
            data = _tasks.fetcher(prefetch_benchmarks(config_yaml=out["evaluate_config"]), s).outputs["benchmarks"]
            isolated_grid(**grid_args, benchmarks=data)
        with dsl.Else():
            grid(**grid_args)

    return corruption_study
