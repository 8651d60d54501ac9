"""Audit: find the false samples of a split of an existing splits artifact (docs/audit.md)."""

from kfp import dsl
from kfp.dsl import Dataset, PipelineTask
from kfp.dsl.graph_component import GraphComponent

from faco.components.audit import audit
from faco.k8s.settings import ClusterSettings
from faco.pipelines import _tasks

NAME = "faco-audit"


def auditor(task: PipelineTask, s: ClusterSettings) -> PipelineTask:
    """One GPU (the audit trains in one process), the cache on the checkpoint PVC, retries, the hub and S3
    credentials."""
    _tasks._on_gpu_nodes(task, s, 1)
    task.set_cpu_request(s.eval_cpu).set_memory_request(s.eval_memory)
    _tasks._checkpoints(task, s)
    _tasks.retried(_tasks.restricted(task))
    return _tasks.secrets(task, s.secrets.huggingface, s.secrets.s3)


def build(s: ClusterSettings | None = None) -> GraphComponent:
    """The audit pipeline for these cluster settings."""
    s = s or ClusterSettings()

    @dsl.pipeline(name=NAME, description="Rank the samples of a split by how likely each is false.")
    def audit_split(config_yaml: str, splits_uri: str, ratio: float = 0.25):
        """splits_uri: a faco splits artifact (e.g. s3://…/splits); ratio: the split to audit."""
        splits = dsl.importer(artifact_uri=splits_uri, artifact_class=Dataset, reimport=False)
        auditor(audit(config_yaml=config_yaml, splits=splits.output, ratio=ratio), s)

    return audit_split
