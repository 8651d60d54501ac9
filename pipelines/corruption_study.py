"""The corruption study as `faco study` runs it: ingest -> generate -> corrupt -> the untrained base
model, and per (ratio, seed) cell [train -> evaluate (-> judge)], recovery of each seed's
`train.recovery.from_ratio` model, -> one analysis -> report.

What a config asks for arrives at run time, while the graph is fixed at compile time, so the
pipeline holds one grid per `variant` (`faco.kfp_glue.variant`: isolated or plain evaluation, with
or without a judge, with or without recovery) and `plan` says which one runs. A variant is a flat
graph of loops, no condition inside: kfp.local (2.17) fails a `dsl.Collected` over a task that a
condition skipped in some iteration ("task 'condition-2' not found"), and over a loop with no
iteration, so the recovery cells are a loop of their own, present only in the `+recovery`
variants (no upstream issue found for these local-runner bugs). Isolated variants (evaluation runs
model-written code) give their evaluate tasks the no-network pod label; those tasks have no
network, so `prefetch_benchmarks` fetches the benchmark data once before them.

Each task downloads only what it reads: an evaluate task the model, its epoch snapshots and the
ingest artifact (benchmark `heldout`); a judge task the model; recovery the one model it retrains;
analyze the evaluations and the loss logs, never the weights (docs/kubeflow.md, sizes at 13B).
"""

from itertools import product
from typing import Any

from kfp import dsl
from kfp.dsl import Dataset, Model, PipelineTask
from kfp.dsl.graph_component import GraphComponent

from faco import images
from faco.components.analyze import analyze
from faco.components.corrupt import corrupt
from faco.components.evaluate import evaluate, evaluate_untrusted, prefetch_benchmarks
from faco.components.generate import generate
from faco.components.ingest import ingest
from faco.components.judge import judge
from faco.components.launch_training_job import launch_training_job
from faco.components.plan import grid_cells, plan
from faco.components.report import report
from faco.components.train import base_model, train, train_from
from faco.k8s.settings import ClusterSettings
from faco.kfp_glue import variant
from faco.pipelines import _tasks

NAME = "faco-corruption-study"
#: (isolated, judge, recovery) of every grid variant.
VARIANTS = list(product((False, True), repeat=3))


def _evaluate(s: ClusterSettings, a: dict[str, Any], model: Any, snapshots: Any = None) -> PipelineTask:
    """`evaluate`; with prefetched `benchmarks`, `evaluate_untrusted` (no-network label, no Secrets)."""
    inputs = {"config_yaml": a["evaluate_config"], "model": model, "sources": a["sources"]}
    if snapshots is not None:
        inputs["snapshots"] = snapshots
    if "benchmarks" not in a:
        return _tasks.evaluator(evaluate(**inputs), s)
    return _tasks.evaluator(evaluate_untrusted(**inputs, benchmarks=a["benchmarks"]), s, untrusted_code=True)


def _train(s: ClusterSettings, a: dict[str, Any], cell: Any) -> PipelineTask:
    """One cell's training: the train task on one node, or a multi-node training job."""
    if s.multi_node.nodes > 1:
        return _tasks.launcher(launch_training_job(
            config_yaml=a["train_config"], splits=a["splits"], ratio=cell.ratio, seed=cell.seed,
            settings_json=s.model_dump_json(), image=images.TRAIN.ref, unique=dsl.PIPELINE_TASK_ID_PLACEHOLDER), s)
    return _tasks.trainer(train(config_yaml=a["train_config"], splits=a["splits"], ratio=cell.ratio, seed=cell.seed), s)


def _scored(s: ClusterSettings, a: dict[str, Any], tr: PipelineTask, judged: bool) -> tuple[PipelineTask, Any]:
    """Evaluate (and judge) one trained model: the evaluate task and the judge task (None without)."""
    ev = _evaluate(s, a, tr.outputs["model"], tr.outputs["snapshots"])
    jd = _tasks.judger(judge(config_yaml=a["judge_config"], model=tr.outputs["model"]), s) if judged else None
    return ev, jd


def _body(s: ClusterSettings, a: dict[str, Any], judged: bool, recovery: bool) -> None:
    """One variant's graph (see the module docstring)."""
    fan: dict[str, Any] = {"config_yaml": a["analyze_config"], "seeds": a["seeds"],
                           "base_evaluation": _evaluate(s, a, a["base"]).outputs["evaluation"]}
    if judged:
        fan["base_judged"] = _tasks.judger(judge(config_yaml=a["judge_config"], model=a["base"]), s).outputs["judged"]
    # no `name=` on ParallelFor: it breaks dsl.Collected on the backend
    # (https://github.com/kubeflow/pipelines/issues/13239)
    with dsl.ParallelFor(a["cells"]) as cell:
        tr = _train(s, a, cell)
        ev, jd = _scored(s, a, tr, judged)
    fan.update(evaluations=dsl.Collected(ev.outputs["evaluation"]), logs=dsl.Collected(tr.outputs["logs"]))
    if judged:
        fan["judged"] = dsl.Collected(jd.outputs["judged"])
    if recovery:
        with dsl.ParallelFor(a["recovery_cells"]) as cell:
            start = _train(s, a, cell)
            start_ev, start_jd = _scored(s, a, start, judged)
            rec = _tasks.trainer(train_from(config_yaml=a["train_config"], splits=a["splits"],
                                            start=start.outputs["model"], ratio=0.0, seed=cell.seed), s)
            rec_ev, rec_jd = _scored(s, a, rec, judged)
        fan.update(start_evaluations=dsl.Collected(start_ev.outputs["evaluation"]),
                   start_logs=dsl.Collected(start.outputs["logs"]),
                   recovered_evaluations=dsl.Collected(rec_ev.outputs["evaluation"]),
                   recovered_logs=dsl.Collected(rec.outputs["logs"]))
        if judged:
            fan.update(start_judged=dsl.Collected(start_jd.outputs["judged"]),
                       recovered_judged=dsl.Collected(rec_jd.outputs["judged"]))
    analysis = _tasks.light(analyze(**fan), s).outputs["analysis"]
    _tasks.light(report(config_yaml=a["config_yaml"], analysis=analysis), s)


def build_grid(s: ClusterSettings, isolated: bool, judged: bool, recovery: bool) -> GraphComponent:
    """The nested pipeline of one variant. It iterates over its own inputs `cells` and `recovery_cells`:
    in kfp.local (2.17), inside a ParallelFor over a task's output, other task-output arguments receive
    the loop item instead of their value (no upstream issue found; the symptom of the long-fixed
    https://github.com/kubeflow/pipelines/issues/2943)."""
    name = "faco-grid-" + variant(isolated, judged, recovery).replace("+", "-")

    if isolated:
        @dsl.pipeline(name=name)
        def grid_isolated(config_yaml: str, train_config: str, evaluate_config: str, judge_config: str,
                          analyze_config: str, seeds: list[int], cells: list[dict], recovery_cells: list[dict],
                          splits: Dataset, sources: Dataset, base: Model, benchmarks: Dataset):
            _body(s, dict(locals()), judged, recovery)

        return grid_isolated

    @dsl.pipeline(name=name)
    def grid(config_yaml: str, train_config: str, evaluate_config: str, judge_config: str, analyze_config: str,
             seeds: list[int], cells: list[dict], recovery_cells: list[dict], splits: Dataset, sources: Dataset,
             base: Model):
        _body(s, dict(locals()), judged, recovery)

    return grid


def _run_variant(grids: dict[str, GraphComponent], chosen: Any, args: dict[str, Any]) -> None:
    """If/Elif/.../Else over `grids` (variant name -> nested pipeline): the one `chosen` names runs."""
    names = list(grids)
    for i, name in enumerate(names):
        branch = (dsl.If(chosen == name) if i == 0 else dsl.Else() if i == len(names) - 1
                  else dsl.Elif(chosen == name))
        with branch:
            grids[name](**args)


def build(s: ClusterSettings | None = None) -> GraphComponent:
    """The corruption-study pipeline for these cluster settings."""
    s = s or ClusterSettings()
    grids = {v: {variant(*v): build_grid(s, *v)} for v in VARIANTS}
    plain = {k: g for v, d in grids.items() if not v[0] for k, g in d.items()}
    isolated = {k: g for v, d in grids.items() if v[0] for k, g in d.items()}

    @dsl.pipeline(name=NAME, description="FACO corruption study: share of false SFT data vs scores.")
    def corruption_study(config_yaml: str, ratios: list[float] = [], overrides: list[str] = [],  # noqa: B006
                         seeds: list[int] = []):  # noqa: B006
        """config_yaml: the study config text; ratios: corruption ratios (empty: the config's);
        overrides: KEY=VALUE config overrides, e.g. train.epochs=1; seeds: training seeds, the grid
        once per seed (empty: the config's train.seed)."""
        p = _tasks.light(plan(config_yaml=config_yaml, ratios=ratios, overrides=overrides, seeds=seeds), s)
        out = p.outputs  # each task gets only its config slice, so KFP's cache sees only what it reads
        src = _tasks.secrets(_tasks.light(ingest(config_yaml=out["ingest_config"]), s),
                             s.secrets.huggingface, s.secrets.s3).outputs["sources"]
        pairs = _tasks.generator(generate(config_yaml=out["generate_config"], sources=src), s)
        splits = _tasks.light(corrupt(config_yaml=out["corrupt_config"], pairs=pairs.outputs["pairs"]),
                              s).outputs["splits"]
        cells = {part: _tasks.light(grid_cells(config_yaml=out["config_yaml"], seeds=out["seeds"],
                                               recovery_starts=part == "recovery_cells"), s).output
                 for part in ("cells", "recovery_cells")}
        base = _tasks.saver(base_model(config_yaml=out["train_config"], splits=splits, seed=out["first_seed"]), s)
        args = {"config_yaml": out["config_yaml"], "seeds": out["seeds"], "splits": splits, "sources": src,
                "base": base.outputs["model"], **cells,
                **{k: out[k] for k in ("train_config", "evaluate_config", "judge_config", "analyze_config")}}
        with dsl.If(out["untrusted_code"] == True):  # noqa: E712 - a KFP condition
            # benchmark data fetched once, with network, for the no-network evaluate tasks
            data = _tasks.fetcher(prefetch_benchmarks(config_yaml=out["evaluate_config"]), s).outputs["benchmarks"]
            _run_variant(isolated, out["variant"], {**args, "benchmarks": data})
        with dsl.Else():
            _run_variant(plain, out["variant"], args)

    return corruption_study
