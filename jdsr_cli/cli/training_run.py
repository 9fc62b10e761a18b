"""Starting and running a training from the CLI, shared by ``jdsr train`` and ``jdsr distill``: options checked
before anything prints, one line per refusal or failure, live progress or plain lines, the closing summary."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from jdsr_cli.cli.console import DEBUG, live_progress_allowed, make_console
from jdsr_cli.errors import Interrupted
from jdsr_cli.process.launch import Launch

if TYPE_CHECKING:
    from rich.console import Console

    from jdsr_cli.training.trainer import RunResult, Trainer


def run_training(resume: Path | None, config_file: Path | None, overrides: dict[str, Any], debug: bool) -> None:
    """Load the options (``--resume`` or ``--config`` + flags), train, and say where the checkpoints are."""
    other_rank = not Launch.from_env().is_main
    console = make_console(quiet=other_rank)  # under torchrun, rank 0 speaks
    if debug:
        DEBUG.set(True)
    trainer = _start(console, resume, config_file, overrides)
    config = trainer.config
    console.print(f"training {trainer.method.describe()} on {trainer.device} for {config.steps} steps "
                  f"-> {config.out}", markup=False)
    try:
        result = _train(console, trainer)
    except Interrupted as stop:
        if other_rank:  # rank 0 saved and says what is kept; another rank's copy of the line would be stale
            raise typer.Exit(stop.exit_code) from None
        raise
    best = f"{result.best_psnr:.2f} dB" if result.best_psnr is not None else "n/a"
    console.print(f"done: best val {trainer.val_label} {best}; checkpoints in {trainer.folder.best} and "
                  f"{trainer.folder.last}", markup=False)


def _start(console: Console, resume: Path | None, config_file: Path | None, overrides: dict[str, Any]) -> Trainer:
    """Options, run folder and data, checked before the run prints anything: a refusal is its only line.

    Whatever its class, a JdsrError here means the run could not start (exit 2). Nothing has been written yet.
    """
    from jdsr_cli.errors import Interrupted, JdsrError, UnexpectedError, UsageError
    from jdsr_cli.training.config import load_config
    from jdsr_cli.training.resume import load_resume_config
    from jdsr_cli.training.trainer import Trainer

    try:
        if resume is not None:
            config = load_resume_config(resume, config_file, overrides)
        else:
            config = load_config(config_file, overrides)
        trainer = Trainer(config, log=lambda text: console.print(text, markup=False))
        trainer.prepare()
        return trainer
    except UsageError:
        raise
    except JdsrError as error:
        raise UsageError(str(error)) from error
    except KeyboardInterrupt:
        raise Interrupted(2, "interrupted before training started; nothing was written") from None
    except Exception as error:
        raise UnexpectedError(error, "before training started; nothing was written") from error


def _train(console: Console, trainer: Trainer) -> RunResult:
    """The run itself: a failure (exit 1) or a signal (exit 130/143) is one line that says what is kept."""
    from jdsr_cli.errors import Interrupted, JdsrError, UnexpectedError

    try:
        return _run(console, trainer)
    except (Interrupted, JdsrError):  # a signal's message says which checkpoint is kept and how to resume
        raise
    except KeyboardInterrupt:  # outside the signal handlers' reach (before the first step)
        raise Interrupted(2, f"interrupted by SIGINT after step {trainer.step}; {trainer.kept()}") from None
    except Exception as error:
        raise UnexpectedError(error, f"the run stopped after step {trainer.step}", trainer.kept()) from error


def _run(console, trainer):  # type: ignore[no-untyped-def]
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    label = trainer.val_label

    def describe(p) -> str:  # type: ignore[no-untyped-def]
        val = f", val {label} {p.val_psnr:.2f}" if p.val_psnr is not None else ""
        return f"loss {p.loss:.4f}, {p.it_per_s:.1f} it/s{val}"

    if not live_progress_allowed(console):
        def line(p) -> None:  # type: ignore[no-untyped-def]
            console.print(f"step {p.step}/{p.steps}: {describe(p)}", markup=False)

        trainer.on_progress = line
        return trainer.run()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console) as bars:
        task = bars.add_task("step", total=trainer.config.steps, completed=trainer.step)

        def update(p) -> None:  # type: ignore[no-untyped-def]
            bars.update(task, completed=p.step, description=describe(p))

        trainer.on_progress = update
        return trainer.run()
