"""Small helpers the KFP components share: resolving the study plan, metrics, picking models.

Components stay thin by calling these; none of them holds stage logic.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

from faco import artifacts
from faco.config import Study, parse_config
from faco.errors import ConfigError
from faco.progress import log


class Plan(NamedTuple):
    """A validated study config with the run's overrides applied, and what the pipeline must do."""

    study: Study
    config_yaml: str
    ratios: list[float]
    recovery: bool
    from_ratio: float
    untrusted_code: bool


def untrusted_code(study: Study) -> bool:
    """Whether evaluation runs model-written code: a code benchmark with `allow_code_execution`."""
    from faco.evaluation.suite import suite

    cfg = study.evaluate
    return cfg.allow_code_execution and any(suite()[b.name].code_execution for b in cfg.benchmarks)


def hub_benchmarks(study: Study) -> list[str]:
    """Benchmarks whose data evaluation downloads from the hub (not an offline twin)."""
    from faco.evaluation.suite import suite
    from faco.evaluation.tasks import uses_twin

    return [b.name for b in study.evaluate.benchmarks if not uses_twin(suite()[b.name], study.evaluate.offline)]


def plan(config_yaml: str, ratios: list[float] | None = None, overrides: list[str] | None = None) -> Plan:
    """Apply `overrides` (KEY=VALUE) and `ratios` (when non-empty) to the config and validate it."""
    extra = list(overrides or [])
    if ratios:
        extra.append(f"corrupt.ratios={json.dumps([float(r) for r in ratios])}")
    study = parse_config(config_yaml, "config_yaml", extra)
    rec = study.train.recovery
    isolated = untrusted_code(study)
    downloads = hub_benchmarks(study) if isolated else []
    if downloads:
        log(f"evaluation runs model-written code, so its pods carry the no-network label; {', '.join(downloads)} "
            "are downloaded beforehand by prefetch_benchmarks and read offline there (docs/kubeflow.md)")
    return Plan(study, study.to_yaml(), list(study.corrupt.ratios), rec is not None,
                rec.from_ratio if rec else 1.0, isolated)


def evaluate_model(config_yaml: str, model_dir: Path, out: Path, benchmarks: Path | None = None
                   ) -> dict[str, float]:
    """The evaluate stage on a model artifact; returns each benchmark's main score (for KFP Metrics).

    `benchmarks`: a `prefetch_benchmarks` artifact; every dataset is then read from it, offline.
    """
    from faco.stages import evaluate

    return scores(evaluate.run(parse_config(config_yaml, "config_yaml"), model_dir, out, benchmarks=benchmarks))


def prefetch_benchmarks(config_yaml: str, out: Path) -> Path:
    """Every configured benchmark's datasets in an HF datasets cache artifact (needs network for hub tasks)."""
    from faco.stages import evaluate

    return evaluate.prefetch(parse_config(config_yaml, "config_yaml"), out)


def scores(eval_dir: Path) -> dict[str, float]:
    """benchmark -> main score of an evaluation artifact (benchmarks without a score are left out)."""
    data: dict[str, Any] = json.loads((eval_dir / "scores.json").read_text())
    return {bench: float(e["score"]) for bench, e in data.items() if e.get("score") is not None}


def pick_by_ratio(model_dirs: list[Path], ratio: float) -> Path:
    """The model artifact trained (from scratch) on the split of `ratio`."""
    for path in model_dirs:
        meta = artifacts.read_manifest(path)["meta"]
        if "start_checkpoint" not in meta and float(meta["ratio"]) == ratio:
            return path
    raise ConfigError(f"no model trained on ratio {ratio} among {len(model_dirs)} models")


def sweep_cells(ratio_grids: list[list[float]], seeds: list[int], overrides: list[str] | None = None,
                ) -> list[dict[str, Any]]:
    """One sweep cell per (ratio grid, seed): the study pipeline's `ratios` and `overrides`."""
    if not ratio_grids or not seeds:
        raise ConfigError("a sweep needs at least one ratio grid and one seed")
    return [{"ratios": [float(r) for r in grid], "overrides": [*(overrides or []), f"train.seed={int(s)}"]}
            for grid in ratio_grids for s in seeds]
