"""The ``jdsr`` command. Each subcommand lives in its own module and imports the library lazily,
so ``jdsr --help`` and ``jdsr upscale`` never import the training code."""

from __future__ import annotations

import typer

from jdsr_cli import __version__
from jdsr_cli.cli import doctor_cmd, downscale_cmd, eval_cmd, models_cmd, train_cmd, upscale_cmd

app = typer.Typer(
    name="jdsr",
    help="Super-resolution from the command line: upscale images with bundled or your own models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"jdsr {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """jdsr: upscale and downscale images, train, evaluate and manage super-resolution models."""


app.command("upscale", no_args_is_help=True)(upscale_cmd.upscale)
app.command("downscale", no_args_is_help=True)(downscale_cmd.downscale)
app.command("train", no_args_is_help=True)(train_cmd.train)
app.command("eval", no_args_is_help=True)(eval_cmd.evaluate)
app.add_typer(models_cmd.app, name="models")
app.command("doctor")(doctor_cmd.doctor)


def main() -> None:
    app()
