"""``jdsr distill``: a small student trained from one or more frozen teachers (``--method distill`` of the
Trainer, its options in the ``[distill]`` table)."""

from __future__ import annotations

from typing import Annotated

import typer

from jdsr_cli.cli import training_options as opt

# what `jdsr upscale` must not import (training code) holds the loss table, so the help lists it here; a test
# keeps the two in step (tests/test_distill.py)
KD_LOSS_HELP = "; ".join((
    "output: output KD (L1 to HR + L1 to the teachers' mean output)",
    "fitnet: 1×1-regressor hints",
    "fakd: spatial-affinity KD",
    "pisr: likelihood of a privileged teacher's features (--teacher: a superior-LR pair, e.g. from jdsr train "
    "--method superior-lr --arch <student arch>; add --init-from-teacher)",
    "lsfd: local regressor + soft attention [reconstruction]",
    "srkd: channel-statistic maps [reconstruction]",
    "feed: per-teacher 3-conv transforms [reconstruction]",
    "dml: online mutual learning, the --teacher models are peers trained along [reconstruction]",
    "afd: dml plus feature-map discriminators [reconstruction]",
))


def _taps(text: str | None) -> list[str] | None:
    return None if text is None else [name.strip() for name in text.split(",") if name.strip()]


def _kd_loss(kd_loss: str | None, former: str | None) -> str | None:
    """``--kd-loss``, or ``--method`` (its former name, hidden, kept for a release), checked under the name given."""
    from jdsr_cli.errors import UsageError
    from jdsr_cli.training.methods.distill.options import parse_kd_loss

    if kd_loss is not None and former is not None and kd_loss != former:
        raise UsageError(f"--kd-loss {kd_loss} and --method {former}: --method is the former name of --kd-loss; "
                         "give one")
    if kd_loss is not None:
        return parse_kd_loss(kd_loss)
    return None if former is None else parse_kd_loss(former, "--method")


def distill(
    data: opt.Data = None,
    teacher: Annotated[list[str] | None, typer.Option(
        "--teacher", help="A model to learn from, as --model takes it (bundled name, checkpoint, hf://); "
        "repeat for several.")] = None,
    student_arch: Annotated[str | None, typer.Option("--student-arch", help="The student's architecture.")] = None,
    student_preset: Annotated[str | None, typer.Option("--student-preset", help="Its preset.")] = None,
    scale: opt.Scale = None,
    kd_loss: Annotated[str | None, typer.Option("--kd-loss", help=f"The distillation loss. {KD_LOSS_HELP}.")] = None,
    method: Annotated[str | None, typer.Option("--method", hidden=True, help="Former name of --kd-loss.")] = None,
    taps_student: Annotated[str | None, typer.Option(
        "--taps-student", help="Comma-separated feature taps (head, body.i, body_tail); default: the body in "
        "thirds + body_tail.")] = None,
    taps_teacher: Annotated[str | None, typer.Option("--taps-teacher", help="As many taps on each teacher.")] = None,
    w_hr: Annotated[float | None, typer.Option("--w-hr", help="Weight of L1(student, HR); default 1.")] = None,
    w_kd: Annotated[float | None, typer.Option("--w-kd", help="Weight of L1(student, teachers' mean output); "
                                               "default 1.")] = None,
    w_feat: Annotated[float | None, typer.Option("--w-feat", help="Weight of the feature term (default: the "
                                                 "method's).")] = None,
    init_from_teacher: Annotated[bool | None, typer.Option(
        "--init-from-teacher/--no-init-from-teacher", help="Start from the first teacher's matching tensors.")] = None,
    config_file: opt.ConfigFile = None,
    out: opt.Out = None,
    resume: opt.Resume = None,
    lr_dir: opt.LrDir = None,
    degradation: opt.Degradation = None,
    val: opt.Val = None,
    init: opt.Init = None,
    steps: opt.Steps = None,
    batch_size: opt.BatchSize = None,
    patch_size: opt.PatchSize = None,
    lr: opt.Lr = None,
    schedule: opt.Schedule = None,
    ema_decay: opt.EmaDecay = None,
    val_every: opt.ValEvery = None,
    save_every: opt.SaveEvery = None,
    device: opt.Device = None,
    precision: opt.Precision = None,
    channels_last: opt.ChannelsLast = None,
    seed: opt.Seed = None,
    workers: opt.Workers = None,
    debug: opt.Debug = False,
) -> None:
    """Make a small, fast model from a big one: the student learns from HR and from frozen teachers.

    Example: jdsr distill photos/ -s 4 --teacher imdn-x4 --student-arch pan --kd-loss fakd --out runs/pan-x4
    """
    from jdsr_cli.cli.training_run import run_training
    from jdsr_cli.training.config import config_overrides, method_overrides

    overrides = config_overrides(
        degradation=degradation,
        data=data, scale=scale, method=None if resume else "distill", arch=student_arch, preset=student_preset,
        out=out, lr_dir=lr_dir, val=val, init=init, steps=steps, batch_size=batch_size, patch_size=patch_size, lr=lr,
        schedule=schedule, ema_decay=ema_decay, val_every=val_every, save_every=save_every, device=device,
        precision=precision, channels_last=channels_last, seed=seed, workers=workers,
    )
    overrides.update(method_overrides(kd_loss=_kd_loss(kd_loss, method), teachers=teacher or None,
                                      taps_student=_taps(taps_student), taps_teacher=_taps(taps_teacher), w_hr=w_hr,
                                      w_kd=w_kd, w_feat=w_feat, init_from_teacher=init_from_teacher))
    run_training(resume, config_file, overrides, debug)
