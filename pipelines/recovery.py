"""Recovery: continue training a given model on the clean split of a given splits artifact, then evaluate."""

from kfp import dsl
from kfp.dsl import Dataset, Model
from kfp.dsl.graph_component import GraphComponent

from faco.components.evaluate import evaluate, evaluate_untrusted, prefetch_benchmarks
from faco.components.plan import plan
from faco.components.train import train_from
from faco.k8s.settings import ClusterSettings
from faco.pipelines import _tasks

NAME = "faco-recovery"


def build(s: ClusterSettings | None = None) -> GraphComponent:
    """The recovery pipeline for these cluster settings."""
    s = s or ClusterSettings()

    @dsl.pipeline(name=NAME, description="Retrain a (corrupted) model on clean data and evaluate it.")
    def recovery(config_yaml: str, model_uri: str, splits_uri: str, sources_uri: str, ratio: float = 0.0,
                 overrides: list[str] = []):  # noqa: B006
        """model_uri: a faco model artifact (e.g. s3://…/model); splits_uri: the study's splits artifact;
        sources_uri: the study's ingest artifact (benchmark `heldout` asks its held-out questions);
        ratio: the split to train on (0.0: clean); overrides: KEY=VALUE config overrides."""
        p = _tasks.light(plan(config_yaml=config_yaml, ratios=[], overrides=overrides, seeds=[]), s)
        train_cfg, eval_cfg = p.outputs["train_config"], p.outputs["evaluate_config"]  # the slices they read
        start = dsl.importer(artifact_uri=model_uri, artifact_class=Model, reimport=False)
        splits = dsl.importer(artifact_uri=splits_uri, artifact_class=Dataset, reimport=False)
        sources = dsl.importer(artifact_uri=sources_uri, artifact_class=Dataset, reimport=False).output
        tr = _tasks.trainer(train_from(config_yaml=train_cfg, splits=splits.output, start=start.output, ratio=ratio,
                                       seed=p.outputs["first_seed"]), s)
        scored = {"config_yaml": eval_cfg, "model": tr.outputs["model"], "sources": sources,
                  "snapshots": tr.outputs["snapshots"]}
        with dsl.If(p.outputs["untrusted_code"] == True):  # noqa: E712 - a KFP condition
            data = _tasks.fetcher(prefetch_benchmarks(config_yaml=eval_cfg), s).outputs["benchmarks"]  # with network
            _tasks.evaluator(evaluate_untrusted(**scored, benchmarks=data), s, untrusted_code=True)
        with dsl.Else():
            _tasks.evaluator(evaluate(**scored), s)

    return recovery
