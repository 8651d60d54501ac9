"""Plan: validate the study config, apply the run's ratios/overrides, say whether to run recovery."""

from typing import NamedTuple

from kfp import dsl

from faco import images


@dsl.component(base_image=images.CPU.ref, install_kfp_package=False)
def plan(config_yaml: str, ratios: list, overrides: list) -> NamedTuple(  # type: ignore[valid-type]
    "PlanOutputs", config_yaml=str, recovery=bool, untrusted_code=bool, ingest_config=str, generate_config=str,
    corrupt_config=str, train_config=str, evaluate_config=str, analyze_config=str,
):
    """Fail fast on a bad config; every later task gets the part of the resolved config it reads.

    `<task>_config`: the config slice of that task (`faco.config_slices.TASKS`), so that KFP's cache
    sees only what the task depends on; `config_yaml`, the whole resolved config, goes to report.

    `untrusted_code`: evaluation runs model-written code, so the pipeline takes the branch whose
    evaluate tasks carry the no-network pod label.

    Args:
        config_yaml: The study config text.
        ratios: Corruption ratios for this run (empty: the config's).
        overrides: KEY=VALUE config overrides, e.g. train.seed=1.
    """
    from typing import NamedTuple

    from faco.kfp_glue import plan as make_plan

    p = make_plan(config_yaml, ratios, overrides)
    # KFP's multi-output form: the NamedTuple is built inside, the component's source travels alone
    outputs = NamedTuple(  # type: ignore[misc] # noqa: UP014
        "PlanOutputs", config_yaml=str, recovery=bool, untrusted_code=bool, ingest_config=str, generate_config=str,
        corrupt_config=str, train_config=str, evaluate_config=str, analyze_config=str)
    return outputs(p.config_yaml, p.recovery, p.untrusted_code,  # type: ignore[call-arg]
                   *(p.slices[t] for t in ("ingest", "generate", "corrupt", "train", "evaluate", "analyze")))


@dsl.component(base_image=images.CPU.ref, install_kfp_package=False)
def ratio_grid(config_yaml: str) -> list:
    """The corruption ratios of a resolved config, as the single output a ParallelFor iterates.

    Not a `plan` output: kfp.local (2.17) cannot iterate over one of several named outputs
    ("Parent pipeline input argument 'plan-ratios' not found"); no upstream issue found yet.

    Args:
        config_yaml: This task's slice of the resolved config (plan's output `corrupt_config`).
    """
    from faco.config_slices import load

    return list(load(config_yaml).corrupt.ratios)


@dsl.component(base_image=images.CPU.ref, install_kfp_package=False)
def sweep_cells(ratio_grids: list, seeds: list, overrides: list) -> list:
    """One cell per (ratio grid, seed): `{"ratios": [...], "overrides": [...]}`.

    Args:
        ratio_grids: Lists of corruption ratios.
        seeds: train.seed values.
        overrides: KEY=VALUE config overrides applied to every cell.
    """
    from faco.kfp_glue import sweep_cells as cells

    return cells(ratio_grids, seeds, overrides)
