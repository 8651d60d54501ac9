"""`faco models ...` commands (a typer sub-app mounted by the CLI)."""

from __future__ import annotations

import typer

from faco.training.models import prepare_models

app = typer.Typer(help="Models faco can train without a download.", no_args_is_help=True)


@app.command("prepare")
def prepare() -> None:
    """Convert the embedded models (SmolLM2-135M-Instruct) to cached transformers folders."""
    for path in prepare_models():
        typer.echo(str(path))
