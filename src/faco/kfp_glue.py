"""Small helpers the KFP components share: resolving the study plan, metrics, picking models.

Components stay thin by calling these; none of them holds stage logic.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, NamedTuple

from faco import artifacts, config_slices
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
    slices: dict[str, str]


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
    """Apply `overrides` (KEY=VALUE) and `ratios` (when non-empty) to the config and validate it; the
    pipeline runs one kind of false chain."""
    from faco.stages.corrupt import one_kind

    extra = list(overrides or [])
    if ratios:
        extra.append(f"corrupt.ratios={json.dumps([float(r) for r in ratios])}")
    study = parse_config(config_yaml, "config_yaml", extra)
    one_kind(study)
    rec = study.train.recovery
    isolated = untrusted_code(study)
    downloads = hub_benchmarks(study) if isolated else []
    if downloads:
        log(f"evaluation runs model-written code, so its pods carry the no-network label; {', '.join(downloads)} "
            "are downloaded beforehand by prefetch_benchmarks and read offline there (docs/kubeflow.md)")
    return Plan(study, study.to_yaml(), list(study.corrupt.ratios), rec is not None,
                rec.from_ratio if rec else 1.0, isolated, config_slices.slices(study))


def evaluate_model(config_yaml: str, model_dir: Path, out: Path, benchmarks: Path | None = None
                   ) -> dict[str, float]:
    """The evaluate stage on a model artifact; returns each benchmark's main score (for KFP Metrics).

    `benchmarks`: a `prefetch_benchmarks` artifact; every dataset is then read from it, offline.
    """
    from faco.stages import evaluate

    return scores(evaluate.run(config_slices.load(config_yaml), model_dir, out, benchmarks=benchmarks))


def prefetch_benchmarks(config_yaml: str, out: Path) -> Path:
    """Every configured benchmark's datasets in an HF datasets cache artifact (needs network for hub tasks)."""
    from faco.stages import evaluate

    return evaluate.prefetch(config_slices.load(config_yaml), out)


def scores(eval_dir: Path) -> dict[str, float]:
    """benchmark -> main score of an evaluation artifact (benchmarks without a score are left out)."""
    data: dict[str, Any] = json.loads((eval_dir / "scores.json").read_text())
    return {bench: float(e["score"]) for bench, e in data.items() if e.get("score") is not None}


#: Environment variable of train tasks: the checkpoint-volume folder their resumable work dirs live in.
ENV_WORK_ROOT = "FACO_WORK_ROOT"


def work_dir(study: Study, splits: Path, ratio: float, start: Path | None = None) -> Path | None:
    """A train task's work dir on the checkpoint volume (`$FACO_WORK_ROOT`), None when unset.

    Keyed by the train section, the splits (and start model) manifests and the ratio, so a retried
    or preempted task finds its own checkpoints and a changed input never resumes a stale run.
    """
    root = os.environ.get(ENV_WORK_ROOT)
    if not root:
        return None
    from faco.ratios import ratio_tag

    parts = [study.section_hash("train"), artifacts.manifest_hash(splits)]
    if start is not None:
        parts.append(artifacts.manifest_hash(start))
    key = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
    return Path(root) / key / ratio_tag(ratio)


def train_model(config_yaml: str, splits: Path, ratio: float, out: Path, start: Path | None = None) -> Path:
    """The train stage on every visible accelerator (`faco.training.torchrun`), resumable on the volume."""
    from faco.training.torchrun import train_split

    study = config_slices.load(config_yaml)
    return train_split(study, splits, ratio, out, start=start, work_dir=work_dir(study, splits, ratio, start),
                       config_text=config_yaml)


def analysis_metrics(analysis_dir: Path) -> dict[str, float]:
    """`<benchmark>.<statistic>` -> value from an analysis artifact's flat `metrics.json` (KFP Metrics).

    Statistics that are missing or not numbers (no recovery run, an undefined r) are left out.
    """
    path = analysis_dir / "metrics.json"
    if not path.is_file():
        return {}
    data: dict[str, Any] = json.loads(path.read_text())
    return {f"{bench}.{key}": float(value) for bench, stats in data.items() if isinstance(stats, dict)
            for key, value in stats.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value == value}


def write_report(config_yaml: str, analysis_dir: Path, folder: Path, markdown: Path, html: Path) -> Path:
    """The report stage into `folder`, with report.md and report.html copied to the single-file paths."""
    import shutil

    from faco.stages import report

    report.run(parse_config(config_yaml, "config_yaml"), analysis_dir, folder)
    shutil.copyfile(folder / "report.md", markdown)
    if (folder / "report.html").is_file():
        shutil.copyfile(folder / "report.html", html)
    else:  # report.html: false in the config
        html.write_text("<!doctype html><p>report.html is turned off in this study's config (report.html: false)."
                        " See the Markdown report.</p>\n")
    return folder


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
