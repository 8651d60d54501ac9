"""Plan: validate the study config, apply the run's ratios/overrides, say whether to run recovery."""

from typing import NamedTuple

from kfp import dsl

from faco import images


@dsl.component(base_image=images.CPU.ref, install_kfp_package=False)
def plan(config_yaml: str, ratios: list, overrides: list) -> NamedTuple(  # type: ignore[valid-type]
    "PlanOutputs", config_yaml=str, recovery=bool, untrusted_code=bool
):
    """Fail fast on a bad config; every later task gets the resolved config text.

    `untrusted_code`: evaluation runs model-written code, so the pipeline takes the branch whose
    evaluate tasks carry the no-network pod label.
    """
    from typing import NamedTuple

    from faco.kfp_glue import plan as make_plan

    p = make_plan(config_yaml, ratios, overrides)
    # KFP's multi-output form: the NamedTuple is built inside, the component's source travels alone
    outputs = NamedTuple(  # type: ignore[misc] # noqa: UP014
        "PlanOutputs", config_yaml=str, recovery=bool, untrusted_code=bool)
    return outputs(p.config_yaml, p.recovery, p.untrusted_code)  # type: ignore[call-arg]


@dsl.component(base_image=images.CPU.ref, install_kfp_package=False)
def ratio_grid(config_yaml: str) -> list:
    """The corruption ratios of a resolved config, as the single output a ParallelFor iterates.

    Not a `plan` output: kfp.local (2.17) cannot iterate over one of several named outputs
    ("Parent pipeline input argument 'plan-ratios' not found"); no upstream issue found yet.
    """
    from faco.config import parse_config

    return list(parse_config(config_yaml, "config_yaml").corrupt.ratios)


@dsl.component(base_image=images.CPU.ref, install_kfp_package=False)
def sweep_cells(ratio_grids: list, seeds: list, overrides: list) -> list:
    """One cell per (ratio grid, seed): `{"ratios": [...], "overrides": [...]}`."""
    from faco.kfp_glue import sweep_cells as cells

    return cells(ratio_grids, seeds, overrides)
