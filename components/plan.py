"""Plan: validate the study config, apply the run's ratios/overrides/seeds, say which grid to run."""

from typing import NamedTuple

from kfp import dsl

from faco import images


@dsl.component(base_image=images.CPU.ref, install_kfp_package=False)
def plan(config_yaml: str, ratios: list, overrides: list, seeds: list) -> NamedTuple(  # type: ignore[valid-type]
    "PlanOutputs", config_yaml=str, variant=str, untrusted_code=bool, seeds=list, first_seed=int, ingest_config=str,
    generate_config=str, corrupt_config=str, train_config=str, evaluate_config=str, judge_config=str,
    analyze_config=str,
):
    """Fail fast on a bad config; every later task gets the part of the resolved config it reads.

    `<task>_config`: the config slice of that task (`faco.config_slices.TASKS`), so that KFP's cache
    sees only what the task depends on; `config_yaml`, the whole resolved config, goes to report.

    `variant`: the grid the pipeline runs (`faco.kfp_glue.variant`): `isolated` when evaluation runs
    model-written code (its evaluate tasks carry the no-network pod label), `+judge` with a judge
    section, `+recovery` with train.recovery. `seeds`: the training seeds (the config's train.seed
    when none are given); `first_seed`: the base model's.

    Args:
        config_yaml: The study config text.
        ratios: Corruption ratios for this run (empty: the config's).
        overrides: KEY=VALUE config overrides, e.g. train.epochs=1.
        seeds: Training seeds: the grid is trained once per seed (empty: the config's train.seed).
    """
    from typing import NamedTuple

    from faco.kfp_glue import plan as make_plan

    p = make_plan(config_yaml, ratios, overrides, seeds)
    # KFP's multi-output form: the NamedTuple is built inside, the component's source travels alone
    outputs = NamedTuple(  # type: ignore[misc] # noqa: UP014
        "PlanOutputs", config_yaml=str, variant=str, untrusted_code=bool, seeds=list, first_seed=int,
        ingest_config=str, generate_config=str, corrupt_config=str, train_config=str, evaluate_config=str,
        judge_config=str, analyze_config=str)
    return outputs(p.config_yaml, p.variant, p.untrusted_code, p.seeds, p.seeds[0],  # type: ignore[call-arg]
                   *(p.slices[t] for t in ("ingest", "generate", "corrupt", "train", "evaluate", "judge",
                                           "analyze")))


@dsl.component(base_image=images.CPU.ref, install_kfp_package=False)
def grid_cells(config_yaml: str, seeds: list, recovery_starts: bool) -> list:
    """The grid's cells `{"ratio", "seed"}`, as the single output a ParallelFor iterates.

    Not a `plan` output: kfp.local (2.17) cannot iterate over one of several named outputs
    ("Parent pipeline input argument 'plan-ratios' not found"); no upstream issue found yet.

    Args:
        config_yaml: The resolved config (plan's output `config_yaml`).
        seeds: The study's training seeds (plan's output `seeds`).
        recovery_starts: Only each seed's train.recovery.from_ratio cell (else every other cell).
    """
    from faco.kfp_glue import cells

    return cells(config_yaml, [int(s) for s in seeds], recovery_starts)


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
