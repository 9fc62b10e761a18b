"""The ``jdsr`` command. Each subcommand lives in its own module and imports the library lazily,
so ``jdsr --help`` and ``jdsr upscale`` never import the training code.

Errors are mapped to messages and exit codes here, once: a :class:`~jdsr_cli.errors.JdsrError` prints
``error: <its one line>`` and exits with its ``exit_code`` (2 could not start, 1 failed, 130/143
interrupted); any other exception prints one line too, and its traceback only with ``--debug`` (or
``JDSR_DEBUG=1``). Commands raise; they do not catch to print.
"""

from __future__ import annotations

import traceback
from typing import Any

import typer
from typer.core import TyperGroup
from typer.exceptions import TyperException

from jdsr_cli import __version__
from jdsr_cli.cli import (
    distill_cache_cmd,
    distill_cmd,
    doctor_cmd,
    downscale_cmd,
    eval_cmd,
    models_cmd,
    train_cmd,
    upscale_cmd,
)

EXIT_BUG = 1


def exit_for(error: BaseException) -> typer.Exit:
    """Print ``error`` as one line (and its traceback with --debug); the exit that ends the command."""
    from jdsr_cli.cli.console import debug_enabled, error_console
    from jdsr_cli.errors import Interrupted, JdsrError, one_line

    console = error_console()
    if debug_enabled():
        console.print("".join(traceback.format_exception(error)), markup=False, end="")
    if isinstance(error, Interrupted):  # not an error: the message says what was kept
        console.print(str(error), markup=False)
        return typer.Exit(error.exit_code)
    if isinstance(error, JdsrError):
        console.print(f"error: {error}", markup=False)
        return typer.Exit(error.exit_code)
    if isinstance(error, MemoryError):
        console.print("error: out of memory", markup=False)
        return typer.Exit(EXIT_BUG)
    if isinstance(error, OSError) and error.filename:  # the system's reason about a named file is not our bug
        console.print(f"error: {error.filename}: {error.strerror or one_line(error)}", markup=False)
        return typer.Exit(1)
    console.print(f"error: {type(error).__name__}: {one_line(error)} (this is a bug in jdsr; "
                  "re-run with --debug for the traceback and report it)", markup=False)
    return typer.Exit(EXIT_BUG)



class _MappedGroup(TyperGroup):
    """The root group: every exception a command lets out is mapped to one line and an exit code."""

    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]
        from jdsr_cli.cli.console import DEBUG

        token = DEBUG.set(False)
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, TyperException):
            raise
        except KeyboardInterrupt:
            from jdsr_cli.errors import Interrupted

            raise exit_for(Interrupted(2, "interrupted (Ctrl-C)")) from None
        except BrokenPipeError:  # the reader left (`jdsr models list | head`): nothing to say, as other tools do
            _silence_stdout()
            raise typer.Exit(128 + 13) from None  # 141, as a shell reports SIGPIPE
        except Exception as error:  # noqa: BLE001 - the one place where errors become exit codes
            raise exit_for(error) from None
        except BaseException as error:  # Interrupted (SIGINT/SIGTERM), MemoryError outside a file's work
            from jdsr_cli.errors import Interrupted

            if isinstance(error, (Interrupted, MemoryError)):
                raise exit_for(error) from None
            raise
        finally:
            DEBUG.reset(token)


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's final flush does not fail on the closed pipe again."""
    import os
    import sys

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


app = typer.Typer(
    name="jdsr",
    cls=_MappedGroup,
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
    ctx: typer.Context,
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks of failures (also JDSR_DEBUG=1)."),
) -> None:
    """jdsr: upscale and downscale images, train, evaluate and manage super-resolution models."""
    from jdsr_cli.cli.console import DEBUG
    from jdsr_cli.process.host_allocator import tune_host_allocator

    del ctx
    DEBUG.set(debug)
    tune_host_allocator()  # this process is ours: reuse freed memory instead of faulting in fresh pages


app.command("upscale", no_args_is_help=True)(upscale_cmd.upscale)
app.command("downscale", no_args_is_help=True)(downscale_cmd.downscale)
app.command("train", no_args_is_help=True)(train_cmd.train)
app.command("distill", no_args_is_help=True)(distill_cmd.distill)
app.command("distill-cache", no_args_is_help=True)(distill_cache_cmd.distill_cache)
app.command("eval", no_args_is_help=True)(eval_cmd.evaluate)
app.add_typer(models_cmd.app, name="models")
app.command("doctor")(doctor_cmd.doctor)


def main() -> None:
    app()
