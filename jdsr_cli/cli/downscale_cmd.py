"""``jdsr downscale``: MATLAB-exact bicubic, area, Lanczos, or the learned superior LR."""

from __future__ import annotations

from typing import Any

import typer

from jdsr_cli.cli.batch_cmd import (
    FailFastOption,
    FormatOption,
    JsonReportOption,
    LosslessOption,
    MaxPixelsOption,
    OutputOption,
    OverwriteOption,
    QualityOption,
    QuietOption,
    RecursiveOption,
    StrictOption,
    StripMetadataOption,
    run_and_finish,
)
from jdsr_cli.cli.console import make_console


def downscale(
    inputs: list[str] = typer.Argument(..., metavar="INPUT...", help="Image files, folders or glob patterns."),
    scale: int | None = typer.Option(None, "-s", "--scale", help="Shrink factor 2, 3 or 4."),
    output: OutputOption = None,
    method: str = typer.Option("bicubic", "--method", help="bicubic (MATLAB-exact), superior, area, lanczos or "
                               "realistic (blur, noise, JPEG: what jdsr eval --degradation realistic scores)."),
    seed: int = typer.Option(0, "--seed", help="--method realistic: the seed of every image's degradation."),
    model: str | None = typer.Option(
        None, "-m", "--model", help="Encoder for --method superior (default: the bundled slr-down-xS)."
    ),
    fit: str = typer.Option("crop", "--fit", help="Sides not divisible by -s: crop (modcrop) or pad (edge)."),
    width: int | None = typer.Option(None, "--width", help="Exact output width (classic methods)."),
    height: int | None = typer.Option(None, "--height", help="Exact output height (classic methods)."),
    recursive: RecursiveOption = False,
    suffix: str | None = typer.Option(None, "--suffix", help="Name suffix (default _down_x{scale})."),
    overwrite: OverwriteOption = False,
    fail_fast: FailFastOption = False,
    fmt: FormatOption = None,
    quality: QualityOption = None,
    lossless: LosslessOption = False,
    strip_metadata: StripMetadataOption = False,
    alpha: str = typer.Option("auto", "--alpha", help="auto (bicubic, constant kept) or discard."),
    max_pixels: MaxPixelsOption = None,
    strict: StrictOption = False,
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N or mps (superior only)."),
    tile: str = typer.Option("auto", "--tile", help="Max tile side in output pixels, 0 for none, or auto."),
    json_report: JsonReportOption = None,
    quiet: QuietOption = False,
) -> None:
    """Shrink images: exact MATLAB bicubic for training pairs and benchmarks, or the superior LR.

    The superior LR is a learned 8-bit image that its paired upscaler enlarges far better than a bicubic
    one: jdsr downscale photo.png -s 4 --method superior, then jdsr upscale photo_down_x4.png -m slr-up-x4.
    Examples: jdsr downscale hr/ -s 4 -o lr/ | jdsr downscale a.png --width 640 --method lanczos
    """
    from jdsr_cli.commands.downscale_job import DownscaleRequest, prepare_downscale
    from jdsr_cli.commands.imagejob import ReadOptions, WriteOptions
    from jdsr_cli.process.cpu_share import CpuShare

    share = CpuShare()  # counted from here: the model's loading is the first window
    job = prepare_downscale(DownscaleRequest(
        inputs=inputs, scale=scale, output=output, method=method, model=model, fit=fit, width=width, height=height,
        recursive=recursive, suffix=suffix, overwrite=overwrite, read=ReadOptions(max_pixels, strict),
        write=WriteOptions(fmt, quality, lossless, strip_metadata), alpha=alpha, device=device, tile=tile,
        report=json_report, seed=seed,
    ))
    run_and_finish(make_console(quiet=quiet), job, fail_fast=fail_fast, json_report=json_report, describe=_describe,
                   quiet=quiet, cpu_share=share)


def _describe(d: dict[str, Any]) -> str:
    return d["method"] + (f", alpha {d['alpha']}" if d.get("alpha") else "")
