"""``jdsr upscale``: parse options, build the job in the library, run it with progress and a summary."""

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
from jdsr_cli.cli.model_options import Denoise, DenoiseFrom


def upscale(
    inputs: list[str] = typer.Argument(..., metavar="INPUT...", help="Image or video files, folders or glob patterns."),
    output: OutputOption = None,
    scale: int | None = typer.Option(None, "-s", "--scale", help="Model scale 2, 3 or 4 (picks the bundled model)."),
    model: str | None = typer.Option(
        None, "-m", "--model", help="Bundled name (jdsr models list), checkpoint path, or hf://owner/repo[@rev]/path."
    ),
    recursive: RecursiveOption = False,
    suffix: str | None = typer.Option(None, "--suffix", help="Name suffix (default _x{scale})."),
    overwrite: OverwriteOption = False,
    fail_fast: FailFastOption = False,
    fmt: FormatOption = None,
    quality: QualityOption = None,
    lossless: LosslessOption = False,
    strip_metadata: StripMetadataOption = False,
    alpha: str = typer.Option("auto", "--alpha", help="auto, model, bicubic or discard."),
    max_pixels: MaxPixelsOption = None,
    strict: StrictOption = False,
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N or mps."),
    precision: str = typer.Option("auto", "--precision", help="auto, fp32, bf16 or fp16."),
    tile: str = typer.Option("auto", "--tile", help="Max tile side in input pixels, 0 for none, or auto."),
    tile_overlap: int = typer.Option(16, "--tile-overlap", help="Tile overlap in input pixels."),
    batch_size: int | None = typer.Option(None, "--batch-size", help="Tiles per device batch."),
    tta: bool = typer.Option(False, "--tta", help="×8 self-ensemble (slower, slightly better)."),
    denoise: Denoise = 1.0,
    denoise_from: DenoiseFrom = None,
    backend: str = typer.Option("torch", "--backend", help="torch, or onnxruntime (CPU, fp32; needs jdsr-cli[onnx]; "
                                "the first run exports and caches the model)."),
    outscale: float | None = typer.Option(None, "--outscale", help="Final scale factor (any value)."),
    width: int | None = typer.Option(None, "--width", help="Final width in pixels."),
    height: int | None = typer.Option(None, "--height", help="Final height in pixels."),
    video_codec: str | None = typer.Option(None, "--video-codec", help="Videos: the encoder (default libx264, "
                                           "libvpx-vp9 for .webm; `jdsr doctor` lists them)."),
    crf: int | None = typer.Option(None, "--crf", help="Videos: quality, lower is better (default 18 for x264)."),
    json_report: JsonReportOption = None,
    quiet: QuietOption = False,
) -> None:
    """Upscale images and videos with a super-resolution model.

    Examples: jdsr upscale photo.png | jdsr upscale ~/Pictures -r -o out/ | jdsr upscale a.jpg -s 2 --outscale 1.5 |
    jdsr upscale clip.mp4 -s 2 --crf 20
    """
    from jdsr_cli.commands.imagejob import ReadOptions, WriteOptions
    from jdsr_cli.commands.upscale_job import UpscaleRequest, prepare_upscale
    from jdsr_cli.process.cpu_share import CpuShare

    share = CpuShare()  # counted from here: the model's loading is the first window
    job = prepare_upscale(UpscaleRequest(
        inputs=inputs, output=output, scale=scale, model=model, recursive=recursive, suffix=suffix,
        overwrite=overwrite, read=ReadOptions(max_pixels, strict),
        write=WriteOptions(fmt, quality, lossless, strip_metadata),
        alpha=alpha, device=device, precision=precision, tile=tile, tile_overlap=tile_overlap, batch_size=batch_size,
        tta=tta, outscale=outscale, width=width, height=height, report=json_report, backend=backend,
        denoise=denoise, denoise_from=denoise_from, video_codec=video_codec, crf=crf,
    ))
    run_and_finish(make_console(quiet=quiet), job, fail_fast=fail_fast, json_report=json_report, describe=_describe,
                   quiet=quiet, cpu_share=share)


def _describe(d: dict[str, Any]) -> str:
    if "video_codec" in d:
        return f"{d['frames']} frames, {d['video_codec']}, {d['device']} {d['precision']}"
    tile = "whole" if d.get("tile") in (None, "whole") else f"tile {d['tile']}"
    return f"{d['device']} {d['precision']}, {tile}"
