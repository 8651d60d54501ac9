"""Sweep: the corruption study over several ratio grids and seeds, one nested study per cell."""

from kfp import dsl
from kfp.dsl.graph_component import GraphComponent

from faco.components.plan import sweep_cells
from faco.k8s.settings import ClusterSettings
from faco.pipelines import _tasks, corruption_study

NAME = "faco-sweep"


def build(s: ClusterSettings | None = None) -> GraphComponent:
    """The sweep pipeline for these cluster settings."""
    s = s or ClusterSettings()
    study = corruption_study.build(s)

    @dsl.pipeline(name=NAME, description="Corruption studies over ratio grids x seeds.")
    def sweep(config_yaml: str, ratio_grids: list[list] = [[0.0, 0.25, 0.5, 0.75, 1.0]],  # noqa: B006
              seeds: list[int] = [0, 1, 2], overrides: list[str] = []):  # noqa: B006
        """ratio_grids: lists of corruption ratios; seeds: train.seed values; one study per pair."""
        cells = _tasks.light(sweep_cells(ratio_grids=ratio_grids, seeds=seeds, overrides=overrides), s)
        # no `name=`: see corruption_study.py (https://github.com/kubeflow/pipelines/issues/13239)
        with dsl.ParallelFor(cells.output, parallelism=s.sweep_parallelism) as cell:
            study(config_yaml=config_yaml, ratios=cell.ratios, overrides=cell.overrides, seeds=[])

    return sweep
