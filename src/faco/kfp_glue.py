"""Small helpers the KFP components share: resolving the study plan, the grid's cells, metrics.

Components stay thin by calling these; none of them holds stage logic. The pipeline runs what
`faco study` runs (`faco.stages.study`): the base model row, the grid once per seed, recovery of
each seed's `from_ratio` model, the judge when configured, one analysis over all of it.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, NamedTuple

import yaml

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
    untrusted_code: bool
    slices: dict[str, str]
    seeds: list[int]
    judge: bool

    @property
    def variant(self) -> str:
        """Which grid the pipeline takes (`variant`)."""
        return variant(self.untrusted_code, self.judge, self.recovery)


def variant(untrusted: bool, judge: bool, recovery: bool) -> str:
    """The name of one grid variant: `plain` or `isolated` (evaluation runs model-written code), then
    `+judge`, `+recovery`. The pipeline holds one grid per variant and runs the plan's."""
    return ("isolated" if untrusted else "plain") + ("+judge" if judge else "") + ("+recovery" if recovery else "")


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


def plan(config_yaml: str, ratios: list[float] | None = None, overrides: list[str] | None = None,
         seeds: list[int] | None = None) -> Plan:
    """Apply `overrides` (KEY=VALUE) and `ratios` (when non-empty) to the config and validate it; the
    pipeline runs one kind of false chain. `seeds`: train the grid once per seed (`faco study
    --seeds`; empty: `train.seed`)."""
    from faco.stages.corrupt import one_kind

    extra = list(overrides or [])
    if ratios:
        extra.append(f"corrupt.ratios={json.dumps([float(r) for r in ratios])}")
    study = parse_config(config_yaml, "config_yaml", extra)
    one_kind(study)
    chosen = [int(s) for s in seeds] if seeds else [study.train.seed]
    if len(set(chosen)) != len(chosen):
        raise ConfigError(f"seeds: {', '.join(map(str, chosen))}: a seed is repeated")
    isolated = untrusted_code(study)
    downloads = hub_benchmarks(study) if isolated else []
    if downloads:
        log(f"evaluation runs model-written code, so its pods carry the no-network label; {', '.join(downloads)} "
            "are downloaded beforehand by prefetch_benchmarks and read offline there (docs/kubeflow.md)")
    return Plan(study, study.to_yaml(), list(study.corrupt.ratios), study.train.recovery is not None, isolated,
                config_slices.slices(study), chosen, study.judge is not None)


def cells(config_yaml: str, seeds: list[int], recovery_starts: bool) -> list[dict[str, Any]]:
    """The grid's cells, `{"ratio": r, "seed": s}`, seed by seed as `faco study` trains them: with
    `recovery_starts`, each seed's `train.recovery.from_ratio` cell (its model is retrained on the
    clean split), else every other cell."""
    study = parse_config(config_yaml, "config_yaml")
    rec = study.train.recovery
    start = rec.from_ratio if rec is not None else None
    return [{"ratio": r, "seed": int(s)} for s in seeds for r in study.corrupt.ratios
            if (r == start) == recovery_starts]


def with_seed(config_yaml: str, seed: int) -> str:
    """A config (or train slice) with `train.seed` set: the text a cell's training reads."""
    data = yaml.safe_load(config_yaml)
    data["train"]["seed"] = int(seed)
    return yaml.safe_dump(data, sort_keys=True)


def base_model(config_yaml: str, splits: Path, seed: int, out: Path) -> Path:
    """The untrained base model (`faco study`'s `train/base`, of the first seed)."""
    from faco.stages import train

    return train.base(config_slices.load(with_seed(config_yaml, seed)), splits, out)


def evaluate_model(config_yaml: str, model_dir: Path, out: Path, sources: Path | None = None,
                   snapshots: Path | None = None, benchmarks: Path | None = None) -> dict[str, float]:
    """The evaluate stage on a model artifact; returns each benchmark's main score (for KFP Metrics).

    `sources`: the ingest artifact (benchmark `heldout` asks its held-out questions); `snapshots`:
    the model's epoch snapshots (`evaluate.per_epoch`); `benchmarks`: a `prefetch_benchmarks`
    artifact, every dataset then read from it, offline.
    """
    from faco.stages import evaluate

    return scores(evaluate.run(config_slices.load(config_yaml), model_dir, out, benchmarks=benchmarks,
                               heldout_from=sources, snapshots=snapshots))


def judge_model(config_yaml: str, model_dir: Path, out: Path) -> Path:
    """The judge stage on a model artifact (paper 001: sampled probe answers, scored by the judge)."""
    from faco.stages import judge

    return judge.run(config_slices.load(config_yaml), model_dir, out)


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


def train_model(config_yaml: str, splits: Path, ratio: float, seed: int, model: Path, snapshots: Path, logs: Path,
                start: Path | None = None) -> Path:
    """The train stage with `train.seed` = `seed` on every visible accelerator (`faco.stages.train.run`),
    resumable on the volume; three artifacts: the model, its epoch snapshots, its loss logs."""
    from faco.stages import train

    text = with_seed(config_yaml, seed)
    study = config_slices.load(text)
    train.run(study, splits, ratio, model, start=start, work_dir=work_dir(study, splits, ratio, start),
              config_text=text, snapshots=snapshots)
    return train.logs(study, model, logs)


def launch_training_job(config_yaml: str, splits: Path, ratio: float, seed: int, settings_json: str, image: str,
                        unique: str, model: Path, snapshots: Path, logs: Path) -> Path:
    """The train stage as a multi-node Kubeflow training job (`faco.k8s.launcher`), its three artifacts."""
    from kubernetes import client, config

    from faco.k8s.launcher import run_job
    from faco.k8s.settings import ClusterSettings
    from faco.ratios import ratio_tag
    from faco.stages import train

    text = with_seed(config_yaml, seed)
    study = config_slices.load(text)  # a bad slice fails here, before a job is created
    config.load_incluster_config()
    run_job(client.CustomObjectsApi(), ClusterSettings.model_validate_json(settings_json), image,
            config_yaml=text, config_hash=hashlib.sha256(text.encode()).hexdigest(), ratio_tag=ratio_tag(ratio),
            unique=unique, splits=splits, ratio=ratio, out=model, snapshots=snapshots)
    return train.logs(study, model, logs)


def analyze(config_yaml: str, seeds: list[int], evaluations: list[Path], logs: list[Path], judged: list[Path],
            out: Path) -> dict[str, float]:
    """The analyze stage on what the grid made, in `faco study`'s order (base; then per seed the grid's
    ratios and recovery), so the analysis is the one `faco study` writes; returns its KFP Metrics."""
    from faco import roles
    from faco.stages import analyze as stage

    def order(path: Path) -> tuple[int, int, int, float]:
        m = artifacts.read_manifest(path)["meta"]
        role, seed = roles.of(m), int(m.get("seed", seeds[0]))
        return (0 if role is roles.Role.BASE else 1, seeds.index(seed) if seed in seeds else len(seeds),
                1 if role is roles.Role.RECOVERY else 0, float(m.get("ratio", 0.0)))

    stage.run(config_slices.load(config_yaml), sorted(evaluations, key=order), sorted(logs, key=order), out,
              judged=sorted(judged, key=order))
    return analysis_metrics(out)


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


def sweep_cells(ratio_grids: list[list[float]], seeds: list[int], overrides: list[str] | None = None,
                ) -> list[dict[str, Any]]:
    """One sweep cell per (ratio grid, seed): the study pipeline's `ratios` and `overrides`."""
    if not ratio_grids or not seeds:
        raise ConfigError("a sweep needs at least one ratio grid and one seed")
    return [{"ratios": [float(r) for r in grid], "overrides": [*(overrides or []), f"train.seed={int(s)}"]}
            for grid in ratio_grids for s in seeds]
