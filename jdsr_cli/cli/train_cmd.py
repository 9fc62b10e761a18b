"""``jdsr train``: supervised training on a folder of your own HR photos."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from jdsr_cli.cli.console import DEBUG, live_progress_allowed, make_console

if TYPE_CHECKING:
    from rich.console import Console

    from jdsr_cli.training.trainer import RunResult, Trainer


def train(
    data: Path | None = typer.Argument(None, metavar="DATA_DIR", help="Folder tree of HR images."),
    scale: int | None = typer.Option(None, "-s", "--scale", help="2, 3 or 4."),
    method: str | None = typer.Option(None, "--method", help="supervised (default), superior-lr (JDSR stage 1: "
                                      "learned downscaler + its decoder; --arch names the decoder) or jdsr "
                                      "(joint distillation of --arch; options in a [jdsr] table)."),
    arch: str | None = typer.Option(None, "--arch", help="Architecture (imdn, pan, fsrcnn, edsr, rcan)."),
    preset: str | None = typer.Option(None, "--preset", help="Architecture preset, e.g. edsr baseline."),
    config_file: Path | None = typer.Option(None, "--config", help="TOML file with any option below."),
    out: Path | None = typer.Option(None, "--out", help="Run folder (checkpoints, log, config)."),
    resume: Path | None = typer.Option(None, "--resume", help="Continue the run in this folder."),
    lr_dir: Path | None = typer.Option(None, "--lr-dir", help="Paired LR images (default: MATLAB bicubic)."),
    val: Path | None = typer.Option(None, "--val", help="Validation HR folder (default: a split of DATA_DIR)."),
    init: str | None = typer.Option(
        None, "--init", help="Start from the matching tensors of a checkpoint, an hf:// model or a bundled model "
        "(fine-tune on your photos: --init imdn-x4)."),
    steps: int | None = typer.Option(None, "--steps"),
    batch_size: int | None = typer.Option(None, "--batch-size"),
    patch_size: int | None = typer.Option(None, "--patch-size", help="LR patch side."),
    lr: float | None = typer.Option(None, "--lr"),
    schedule: str | None = typer.Option(None, "--schedule", help="cosine or multistep."),
    ema_decay: float | None = typer.Option(None, "--ema-decay", help="e.g. 0.999; 0 = off."),
    lr_weight: float | None = typer.Option(None, "--lr-weight", help="superior-lr: weight of L1(E(HR), bicubic LR)."),
    sr_weight: float | None = typer.Option(None, "--sr-weight", help="superior-lr: weight of L1(D(E(HR)), HR)."),
    self_distill: bool | None = typer.Option(None, "--self-distill/--no-self-distill",
                                             help="jdsr: sectioned target, heads supervised by HR and soft labels."),
    meta: bool | None = typer.Option(None, "--meta/--no-meta", help="jdsr: meta-learn the soft-label generator."),
    mutual: bool | None = typer.Option(None, "--mutual/--no-mutual",
                                       help="jdsr: mutual learning with the peer fed the superior LR."),
    curriculum: bool | None = typer.Option(None, "--curriculum/--no-curriculum",
                                           help="jdsr: ramp the mutual term up, w = exp(-k(1-T)^2)."),
    gap_threshold: str | None = typer.Option(None, "--gap-threshold", metavar="DB|none",
                                             help="jdsr: pause the peer while it leads the target by more than "
                                             "this (dB); none: never."),
    ml_weight: float | None = typer.Option(None, "--ml-weight", help="jdsr: weight of the mutual-learning terms."),
    val_every: int | None = typer.Option(None, "--val-every"),
    save_every: int | None = typer.Option(None, "--save-every"),
    device: str | None = typer.Option(None, "--device"),
    precision: str | None = typer.Option(None, "--precision", help="fp32 or bf16 (autocast; ~2x faster on "
                                         "CPUs with AMX/AVX512-BF16 and on GPUs)."),
    channels_last: bool | None = typer.Option(None, "--channels-last/--no-channels-last",
                                              help="NHWC memory format (default on)."),
    seed: int | None = typer.Option(None, "--seed"),
    workers: int | None = typer.Option(None, "--workers"),
    debug: bool = typer.Option(False, "--debug", envvar="JDSR_DEBUG",
                               help="Show the traceback of an unexpected error (also JDSR_DEBUG=1)."),
) -> None:
    """Train a model on your photos (L1, Adam, cosine or multistep, optional EMA), or a superior-LR pair.

    Examples: jdsr train photos/ -s 4 --arch imdn --steps 20000 --out runs/mine | jdsr train --resume runs/mine
    """
    import os

    from jdsr_cli.training.options import config_overrides, method_overrides, parse_gap_threshold

    console = make_console(quiet=os.environ.get("RANK", "0") != "0")  # under torchrun, rank 0 speaks
    overrides = config_overrides(
        data=data, scale=scale, method=method, arch=arch, preset=preset, out=out, lr_dir=lr_dir, val=val,
        init=init, steps=steps, batch_size=batch_size, patch_size=patch_size, lr=lr, schedule=schedule,
        ema_decay=ema_decay, lr_weight=lr_weight, sr_weight=sr_weight, val_every=val_every, save_every=save_every,
        device=device, precision=precision, channels_last=channels_last, seed=seed, workers=workers,
    )
    overrides.update(method_overrides(self_distill=self_distill, meta=meta, mutual=mutual, curriculum=curriculum,
                                      gap_threshold=parse_gap_threshold(gap_threshold), ml_weight=ml_weight))
    if debug:
        DEBUG.set(True)
    trainer = _start(console, resume, config_file, overrides)
    config = trainer.config
    console.print(f"training {trainer.method.describe()} on {trainer.device} for {config.steps} steps "
                  f"-> {config.out}", markup=False)
    result = _train(console, trainer)
    best = f"{result.best_psnr:.2f} dB" if result.best_psnr is not None else "n/a"
    console.print(f"done: best val PSNR-Y crop={config.scale} {best}; checkpoints in {result.run_dir}/best and "
                  f"{result.run_dir}/last", markup=False)


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

    label = f"PSNR-Y crop={trainer.config.scale}"

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
