"""``jdsr upscale``: parse options, run the batch through the library, render progress and a summary."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from jdsr_cli.cli.batch_cmd import (
    EXIT_USAGE,
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
    StripMetadataOption,
    finish,
    inputs_for_this_rank,
    launcher_rank,
    parse_tile,
    run_with_progress,
)
from jdsr_cli.cli.console import error_console, make_console


def upscale(
    inputs: list[str] = typer.Argument(..., metavar="INPUT...", help="Image files, folders or glob patterns."),
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
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N or mps."),
    precision: str = typer.Option("auto", "--precision", help="auto, fp32, bf16 or fp16."),
    tile: str = typer.Option("auto", "--tile", help="Max tile side in input pixels, 0 for none, or auto."),
    tile_overlap: int = typer.Option(16, "--tile-overlap", min=0, help="Tile overlap in input pixels."),
    batch_size: int | None = typer.Option(None, "--batch-size", min=1, help="Tiles per device batch."),
    tta: bool = typer.Option(False, "--tta", help="×8 self-ensemble (slower, slightly better)."),
    outscale: float | None = typer.Option(None, "--outscale", help="Final scale factor (any value)."),
    width: int | None = typer.Option(None, "--width", help="Final width in pixels."),
    height: int | None = typer.Option(None, "--height", help="Final height in pixels."),
    json_report: JsonReportOption = None,
    quiet: QuietOption = False,
) -> None:
    """Upscale images with a super-resolution model.

    Examples: jdsr upscale photo.png | jdsr upscale ~/Pictures -r -o out/ | jdsr upscale a.jpg -s 2 --outscale 1.5
    """
    from jdsr_cli.errors import JdsrError

    console = make_console(quiet=quiet)
    errors = error_console()
    try:
        job = _prepare(
            inputs, output, scale, model, recursive, suffix, fmt, alpha, device, precision, tile, tile_overlap,
            batch_size, tta, outscale, width, height,
        )
    except JdsrError as error:  # nothing ran: bad option, unknown or unloadable model, missing device
        errors.print(f"error: {error}", markup=False)
        raise typer.Exit(EXIT_USAGE) from None

    from jdsr_cli.commands.upscale import make_processor

    def processor(progress):  # type: ignore[no-untyped-def]
        return make_processor(
            job.upscaler, size=job.size, alpha=alpha, fmt=fmt, quality=quality, lossless=lossless,
            strip_metadata=strip_metadata, max_pixels=max_pixels, progress=progress,
        )

    if not quiet:
        console.print(
            f"model {job.model_name} (×{job.upscaler.scale}, {job.arch}) on {job.upscaler.device} "
            f"{job.upscaler.precision.name}; {len(job.items)} image(s)",
            markup=False,
        )
        if job.pair is not None:
            console.print(f"note: {job.model_name} is made for images shrunk by {job.pair} "
                          f"(jdsr downscale --method superior); on other images prefer the default model",
                          markup=False)
    reports = run_with_progress(console, job.items, job.naming, processor, overwrite, fail_fast, _describe)
    header = {"model": job.model_name, "arch": job.arch, "scale": job.upscaler.scale,
              "device": str(job.upscaler.device), "precision": job.upscaler.precision.name}
    defaults = {"size_in": None, "size_out": None, "tile": None, "device": str(job.upscaler.device)}
    finish(console, errors, "upscale", job.items, reports, json_report, header, defaults)


def _describe(d: dict[str, Any]) -> str:
    tile = "whole" if d.get("tile") in (None, "whole") else f"tile {d['tile']}"
    return f"{d['device']} {d['precision']}, {tile}"


@dataclass(frozen=True)
class _Job:
    """Everything validated before the first image is read."""

    items: list[Any]  # list[InputFile]
    naming: Any  # OutputNaming
    upscaler: Any  # Upscaler
    size: Any  # OutputSize
    model_name: str
    arch: str
    pair: str | None = None  # the downscaler whose output this model is made for (superior-LR decoders)


def _prepare(
    inputs: list[str], output: Path | None, scale: int | None, model: str | None, recursive: bool,
    suffix: str | None, fmt: str | None, alpha: str, device: str, precision: str, tile: str,
    tile_overlap: int, batch_size: int | None, tta: bool, outscale: float | None, width: int | None,
    height: int | None,
) -> _Job:
    """Validate everything that can be validated before the first image is read."""
    from jdsr_cli.commands.batch import OutputNaming
    from jdsr_cli.checkpoints.resolve import resolve_model
    from jdsr_cli.errors import UsageError
    from jdsr_cli.commands.upscale import ALPHA_MODES, OutputSize, check_scale, create_upscaler, output_extension

    if scale is not None and scale not in (2, 3, 4):
        raise UsageError(f"--scale {scale}: choose 2, 3 or 4 (use --outscale for other factors)")
    if alpha not in ALPHA_MODES:
        raise UsageError(f"--alpha {alpha!r}: choose one of {', '.join(ALPHA_MODES)}")
    tile_setting = parse_tile(tile)
    size = OutputSize(outscale, width, height)
    extension = output_extension(fmt)
    items = inputs_for_this_rank(inputs, recursive)
    _, world, local_rank = launcher_rank()
    if world > 1 and device == "auto" and _cuda_count() > 1:
        device = f"cuda:{local_rank % _cuda_count()}"
    loaded = resolve_model(model, scale=scale)
    candidates = loaded.meta.get("scale_candidates") or []
    if scale is None and len(candidates) > 1:
        raise UsageError(
            f"{loaded.source}: the weights fit scales {', '.join(f'×{c}' for c in candidates)} equally; "
            "pass -s to say which"
        )
    check_scale(scale, loaded.config.scale, loaded.source)
    upscaler = create_upscaler(
        loaded, device=device, precision=precision, tile=tile_setting, overlap=tile_overlap,
        batch_size=batch_size, tta=tta,
    )
    naming = OutputNaming(suffix if suffix is not None else size.suffix(loaded.config.scale), output, extension)
    name = loaded.name or loaded.source
    pair = loaded.entry.pair if loaded.entry is not None else None
    return _Job(items=items, naming=naming, upscaler=upscaler, size=size, model_name=name, arch=loaded.config.arch,
                pair=pair)


def _cuda_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0
