"""``jdsr train``: training on a folder of your own HR photos (supervised, adversarial, superior-lr or jdsr)."""

from __future__ import annotations

from typing import Annotated

import typer

from jdsr_cli.cli import training_options as opt

#: Static (the registry is not imported at CLI start-up); tests/test_cli.py keeps it in step with the registry.
ARCH_HELP = "Architecture (imdn, span, pan, fsrcnn, edsr, rcan, srvgg, rrdbnet)."
#: Static too; tests/test_train_methods.py keeps it in step with training.registry (distill has its own command).
METHOD_HELP = ("supervised (default), adversarial (L1 + a patch discriminator's adversarial term, for texture; "
               "its options: --gan-weight and the adversarial table of --config), superior-lr (JDSR stage 1: "
               "learned downscaler + its decoder; --arch names the decoder; its options: the superior-lr table of "
               "--config) or jdsr (joint distillation of --arch; its options: the jdsr table of --config).")


def train(
    data: opt.Data = None,
    scale: opt.Scale = None,
    method: Annotated[str | None, typer.Option("--method", help=METHOD_HELP)] = None,
    arch: Annotated[str | None, typer.Option("--arch", help=ARCH_HELP)] = None,
    preset: Annotated[str | None, typer.Option("--preset", help="Architecture preset, e.g. edsr baseline.")] = None,
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
    gan_weight: Annotated[float | None, typer.Option(
        "--gan-weight", help="adversarial: weight of the adversarial term against L1 (default 0.1).")] = None,
    texture_weight: Annotated[float | None, typer.Option(
        "--texture-weight", help="adversarial: weight of the texture term (local detail energy and grid signal "
        "matched to the target's; default 0).")] = None,
    lr_weight: Annotated[float | None, typer.Option(
        "--lr-weight", help="superior-lr: weight of L1(E(HR), bicubic LR).")] = None,
    sr_weight: Annotated[float | None, typer.Option(
        "--sr-weight", help="superior-lr: weight of L1(D(E(HR)), HR).")] = None,
    self_distill: Annotated[bool | None, typer.Option(
        "--self-distill/--no-self-distill", help="jdsr: sectioned target, heads supervised by HR and soft "
        "labels.")] = None,
    meta: Annotated[bool | None, typer.Option("--meta/--no-meta", help="jdsr: meta-learn the soft-label "
                                              "generator.")] = None,
    mutual: Annotated[bool | None, typer.Option("--mutual/--no-mutual", help="jdsr: mutual learning with the "
                                                "peer fed the superior LR.")] = None,
    curriculum: Annotated[bool | None, typer.Option("--curriculum/--no-curriculum", help="jdsr: ramp the mutual "
                                                    "term up, w = exp(-k(1-T)^2).")] = None,
    gap_threshold: Annotated[str | None, typer.Option(
        "--gap-threshold", metavar="DB|none", help="jdsr: pause the peer while it leads the target by more than "
        "this (dB); none: never.")] = None,
    ml_weight: Annotated[float | None, typer.Option("--ml-weight", help="jdsr: weight of the mutual-learning "
                                                    "terms.")] = None,
    teacher: Annotated[list[str] | None, typer.Option(
        "--teacher", help="jdsr: also learn from this frozen model (as --model takes it) by --kd-loss; "
        "repeat for several.")] = None,
    kd_loss: Annotated[str | None, typer.Option(
        "--kd-loss", metavar="output|fitnet|fakd|lsfd|srkd|feed", help="jdsr with --teacher: the offline loss, "
        "as jdsr distill --kd-loss.")] = None,
    val_every: opt.ValEvery = None,
    save_every: opt.SaveEvery = None,
    device: opt.Device = None,
    precision: opt.Precision = None,
    channels_last: opt.ChannelsLast = None,
    seed: opt.Seed = None,
    workers: opt.Workers = None,
    debug: opt.Debug = False,
) -> None:
    """Train a model on your photos (L1, Adam, cosine or multistep, optional EMA), a superior-LR pair, or JDSR.

    Examples: jdsr train photos/ -s 4 --arch imdn --steps 20000 --out runs/mine | jdsr train --resume runs/mine
    """
    from jdsr_cli.cli.training_run import run_training
    from jdsr_cli.training.config import config_overrides, method_overrides
    from jdsr_cli.training.methods.jdsr.options import parse_gap_threshold

    overrides = config_overrides(
        degradation=degradation,
        data=data, scale=scale, method=method, arch=arch, preset=preset, out=out, lr_dir=lr_dir, val=val,
        init=init, steps=steps, batch_size=batch_size, patch_size=patch_size, lr=lr, schedule=schedule,
        ema_decay=ema_decay, val_every=val_every, save_every=save_every,
        device=device, precision=precision, channels_last=channels_last, seed=seed, workers=workers,
    )
    overrides.update(method_overrides(gan_weight=gan_weight, texture_weight=texture_weight,  # adversarial
                                      lr_weight=lr_weight, sr_weight=sr_weight,  # superior-lr
                                      self_distill=self_distill, meta=meta, mutual=mutual, curriculum=curriculum,
                                      gap_threshold=parse_gap_threshold(gap_threshold), ml_weight=ml_weight,
                                      teachers=teacher or None, kd_loss=kd_loss))
    run_training(resume, config_file, overrides, debug)
