"""The corruption study: ingest -> generate -> corrupt -> per ratio [train -> evaluate] -> analyze -> report.

With `train.recovery` in the config, the model of `from_ratio` is also retrained on the clean
split and evaluated, and that run joins the analysis. When evaluation runs model-written code
(`plan`'s `untrusted_code`), the grid's variant whose evaluate tasks carry the no-network pod
label runs instead (a pod label is fixed at compile time, the config arrives at run time).
"""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Model
from kfp.dsl.graph_component import GraphComponent

from components.analyze import analyze
from components.corrupt import corrupt
from components.evaluate import evaluate, evaluate_untrusted
from components.generate import generate
from components.ingest import ingest
from components.launch_training_job import launch_training_job
from components.plan import plan, ratio_grid
from components.report import report
from components.train import recover, train
from faco import images
from faco.k8s.settings import ClusterSettings
from pipelines import _tasks

NAME = "faco-corruption-study"


def build_finish(s: ClusterSettings, untrusted_code: bool = False) -> GraphComponent:
    """Fan-in: analyze and report, with the recovery run first when the config asks for it.

    A nested pipeline, because a `dsl.Collected` list of artifacts consumed inside a `dsl.If`
    does not compile in kfp 2.17 (TypeError in build_component_spec_for_group), while a
    condition inside a nested pipeline that receives the list does. Upstream tracks Collected
    with conditions in https://github.com/kubeflow/pipelines/issues/10050.
    """

    evaluator = evaluate_untrusted if untrusted_code else evaluate

    @dsl.pipeline(name="faco-analyze-and-report" + ("-isolated" if untrusted_code else ""))
    def finish(config_yaml: str, recovery: bool, splits: Dataset, evaluations: list[Artifact],
               models: list[Model]):
        with dsl.If(recovery == True):  # noqa: E712 - a KFP condition, not a Python test
            rec = _tasks.trainer(recover(config_yaml=config_yaml, splits=splits, models=models), s)
            rec_eval = _tasks.evaluator(evaluator(config_yaml=config_yaml, model=rec.outputs["model"]), s,
                                        untrusted_code=untrusted_code)
            with_rec = _tasks.light(analyze(
                config_yaml=config_yaml, evaluations=evaluations, models=models,
                recovery_evaluation=rec_eval.outputs["evaluation"], recovery_model=rec.outputs["model"],
            ), s)
            _tasks.light(report(config_yaml=config_yaml, analysis=with_rec.outputs["analysis"]), s)
        with dsl.Else():
            plain = _tasks.light(analyze(config_yaml=config_yaml, evaluations=evaluations, models=models), s)
            _tasks.light(report(config_yaml=config_yaml, analysis=plain.outputs["analysis"]), s)

    return finish


def build_grid(s: ClusterSettings, untrusted_code: bool = False) -> GraphComponent:
    """Per ratio [train -> evaluate], then the fan-in; `untrusted_code`: evaluate tasks get the no-network label.

    A nested pipeline iterating over its own input: in kfp.local (2.17), inside a ParallelFor over
    a task's output, other task-output arguments receive the loop item instead of their value
    (no upstream issue found; the symptom of the long-fixed https://github.com/kubeflow/pipelines/issues/2943).
    """
    finish = build_finish(s, untrusted_code)
    evaluator = evaluate_untrusted if untrusted_code else evaluate

    @dsl.pipeline(name="faco-ratio-grid" + ("-isolated" if untrusted_code else ""))
    def grid(config_yaml: str, ratios: list[float], recovery: bool, splits: Dataset):
        # no `name=` on ParallelFor: it breaks dsl.Collected on the backend
        # (https://github.com/kubeflow/pipelines/issues/13239)
        with dsl.ParallelFor(ratios) as ratio:
            if s.multi_node.nodes > 1:
                tr = _tasks.launcher(launch_training_job(
                    config_yaml=config_yaml, splits=splits, ratio=ratio, settings_json=s.model_dump_json(),
                    image=images.TRAIN.ref, unique=dsl.PIPELINE_TASK_ID_PLACEHOLDER), s)
            else:
                tr = _tasks.trainer(train(config_yaml=config_yaml, splits=splits, ratio=ratio), s)
            ev = _tasks.evaluator(evaluator(config_yaml=config_yaml, model=tr.outputs["model"]), s,
                                  untrusted_code=untrusted_code)
        finish(config_yaml=config_yaml, recovery=recovery, splits=splits,
               evaluations=dsl.Collected(ev.outputs["evaluation"]), models=dsl.Collected(tr.outputs["model"]))

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
        cfg = p.outputs["config_yaml"]
        src = _tasks.secrets(_tasks.light(ingest(config_yaml=cfg), s), s.secrets.huggingface, s.secrets.s3)
        pairs = _tasks.secrets(_tasks.light(generate(config_yaml=cfg, sources=src.outputs["sources"]), s),
                               s.secrets.openai)
        splits = _tasks.light(corrupt(config_yaml=cfg, pairs=pairs.outputs["pairs"]), s).outputs["splits"]
        ratio_list = _tasks.light(ratio_grid(config_yaml=cfg), s).output
        with dsl.If(p.outputs["untrusted_code"] == True):  # noqa: E712 - a KFP condition
            isolated_grid(config_yaml=cfg, ratios=ratio_list, recovery=p.outputs["recovery"], splits=splits)
        with dsl.Else():
            grid(config_yaml=cfg, ratios=ratio_list, recovery=p.outputs["recovery"], splits=splits)

    return corruption_study
