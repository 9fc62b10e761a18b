"""``jdsr upscale``: parse options, run the batch through the library, render progress and a summary."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from jdsr_cli.cli.console import error_console, live_progress_allowed, make_console

EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE = 0, 1, 2


def upscale(
    inputs: list[str] = typer.Argument(..., metavar="INPUT...", help="Image files, folders or glob patterns."),
    output: Path | None = typer.Option(None, "-o", "--output", help="Output folder (default: next to each input)."),
    scale: int | None = typer.Option(None, "-s", "--scale", help="Model scale 2, 3 or 4 (picks the bundled model)."),
    model: str | None = typer.Option(
        None, "-m", "--model", help="Bundled name (jdsr models list), checkpoint path, or hf://owner/repo[@rev]/path."
    ),
    recursive: bool = typer.Option(False, "-r", "--recursive", help="Recurse into folders; mirror subfolders under -o."),
    suffix: str | None = typer.Option(None, "--suffix", help="Name suffix (default _x{scale})."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs (default: skip them)."),
    fail_fast: bool = typer.Option(False, "--fail-fast", help="Stop at the first failed file."),
    fmt: str | None = typer.Option(None, "--format", help="png, jpg, webp or tiff (default: the input's)."),
    quality: int | None = typer.Option(None, "--quality", min=1, max=100, help="JPEG/WebP quality."),
    lossless: bool = typer.Option(False, "--lossless", help="Lossless WebP."),
    strip_metadata: bool = typer.Option(False, "--strip-metadata", help="Do not copy EXIF and ICC profile."),
    alpha: str = typer.Option("auto", "--alpha", help="auto, model, bicubic or discard."),
    max_pixels: int | None = typer.Option(None, "--max-pixels", help="Raise the decompression-bomb limit."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N or mps."),
    precision: str = typer.Option("auto", "--precision", help="auto, fp32, bf16 or fp16."),
    tile: str = typer.Option("auto", "--tile", help="Max tile side in input pixels, 0 for none, or auto."),
    tile_overlap: int = typer.Option(16, "--tile-overlap", min=0, help="Tile overlap in input pixels."),
    batch_size: int | None = typer.Option(None, "--batch-size", min=1, help="Tiles per device batch."),
    tta: bool = typer.Option(False, "--tta", help="×8 self-ensemble (slower, slightly better)."),
    outscale: float | None = typer.Option(None, "--outscale", help="Final scale factor (any value)."),
    width: int | None = typer.Option(None, "--width", help="Final width in pixels."),
    height: int | None = typer.Option(None, "--height", help="Final height in pixels."),
    json_report: Path | None = typer.Option(None, "--json", help="Write a machine-readable report here."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="Print errors only."),
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

    from jdsr_cli.upscale import make_processor

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
    reports = _run_with_progress(console, job, processor, overwrite, fail_fast)
    for report in reports:
        if report.status == "failed":
            errors.print(f"failed: {report.error}", markup=False)
    done = sum(r.status == "done" for r in reports)
    skipped = sum(r.status == "skipped" for r in reports)
    failed = sum(r.status == "failed" for r in reports)
    not_run = len(job.items) - len(reports)
    summary = f"{done} done, {skipped} skipped, {failed} failed" + (f", {not_run} not run (--fail-fast)" if not_run else "")
    console.print(summary, markup=False)
    if json_report is not None:
        rank, world, _ = _launcher_rank()
        if world > 1:  # one report per rank: report.json -> report.rank0.json, report.rank1.json, ...
            json_report = json_report.with_name(f"{json_report.stem}.rank{rank}{json_report.suffix}")
        _write_report(json_report, job, reports, done, skipped, failed)
    raise typer.Exit(EXIT_SOME_FAILED if failed or not_run else EXIT_OK)


@dataclass(frozen=True)
class _Job:
    """Everything validated before the first image is read."""

    items: list[Any]  # list[InputFile]
    naming: Any  # OutputNaming
    upscaler: Any  # Upscaler
    size: Any  # OutputSize
    model_name: str
    arch: str


def _prepare(
    inputs: list[str], output: Path | None, scale: int | None, model: str | None, recursive: bool,
    suffix: str | None, fmt: str | None, alpha: str, device: str, precision: str, tile: str,
    tile_overlap: int, batch_size: int | None, tta: bool, outscale: float | None, width: int | None,
    height: int | None,
) -> _Job:
    """Validate everything that can be validated before the first image is read."""
    from jdsr_cli.batch import OutputNaming, collect_inputs, shard_for_rank
    from jdsr_cli.checkpoints.resolve import resolve_model
    from jdsr_cli.errors import UsageError
    from jdsr_cli.upscale import ALPHA_MODES, OutputSize, check_scale, create_upscaler, output_extension

    if scale is not None and scale not in (2, 3, 4):
        raise UsageError(f"--scale {scale}: choose 2, 3 or 4 (use --outscale for other factors)")
    if alpha not in ALPHA_MODES:
        raise UsageError(f"--alpha {alpha!r}: choose one of {', '.join(ALPHA_MODES)}")
    tile_setting = _parse_tile(tile)
    size = OutputSize(outscale, width, height)
    extension = output_extension(fmt)
    items = collect_inputs(inputs, recursive=recursive)
    if not items:
        raise UsageError(f"no images found in {', '.join(inputs)}")
    rank, world, local_rank = _launcher_rank()
    items = shard_for_rank(items, rank, world)
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
    return _Job(items=items, naming=naming, upscaler=upscaler, size=size, model_name=name, arch=loaded.config.arch)


def _launcher_rank() -> tuple[int, int, int]:
    """(rank, world size, local rank) under torchrun; (0, 1, 0) when run directly."""
    import os

    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


def _cuda_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _parse_tile(value: str) -> int | str:
    from jdsr_cli.errors import UsageError

    if value.lower() == "auto":
        return "auto"
    try:
        tile = int(value)
    except ValueError:
        raise UsageError(f"--tile {value!r}: use auto, 0 (no tiling) or a size in pixels") from None
    if tile < 0 or 0 < tile < 32:
        raise UsageError(f"--tile {tile}: use 0 (no tiling) or at least 32 pixels")
    return tile


def _run_with_progress(console, job, processor, overwrite, fail_fast):  # type: ignore[no-untyped-def]
    """Live bars (files + tiles of the current image) on a terminal; one line per file otherwise."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from jdsr_cli.batch import run_batch

    def line(report) -> None:  # type: ignore[no-untyped-def]
        if report.status == "done":
            d = report.details
            tile = "whole" if d.get("tile") in (None, "whole") else f"tile {d['tile']}"
            console.print(
                f"done    {report.input} -> {report.output} "
                f"({d['size_in'][0]}x{d['size_in'][1]} -> {d['size_out'][0]}x{d['size_out'][1]}, "
                f"{report.seconds:.2f} s, {d['device']} {d['precision']}, {tile})",
                markup=False,
            )
        elif report.status == "skipped":
            console.print(f"skipped {report.input}: {report.error}", markup=False)

    if not live_progress_allowed(console):
        return run_batch(
            job.items, job.naming, processor(None), overwrite=overwrite, fail_fast=fail_fast, on_done=line
        )

    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, transient=False,
    ) as bars:
        files = bars.add_task("images", total=len(job.items))
        tiles = bars.add_task("tiles", total=1, visible=False)

        def on_tile(done: int, total: int) -> None:
            bars.update(tiles, completed=done, total=total, visible=True)

        def start(index, item, output) -> None:  # type: ignore[no-untyped-def]
            bars.update(files, description=f"{item.path.name}")
            bars.update(tiles, completed=0, visible=False)

        def done(report) -> None:  # type: ignore[no-untyped-def]
            bars.advance(files)
            line(report)

        return run_batch(
            job.items, job.naming, processor(on_tile), overwrite=overwrite, fail_fast=fail_fast,
            on_start=start, on_done=done,
        )


def _record(report: Any, device: str) -> dict[str, Any]:
    """Every record has the same keys, whatever its status."""
    record = report.to_json()
    for key in ("size_in", "size_out", "tile"):
        record.setdefault(key, None)
    record.setdefault("device", device)
    return record


def _write_report(path: Path, job: _Job, reports: list, done: int, skipped: int, failed: int) -> None:  # type: ignore[type-arg]
    from jdsr_cli import __version__
    from jdsr_cli.io.atomic import atomic_write_text

    payload = {
        "jdsr_version": __version__,
        "command": "upscale",
        "model": job.model_name,
        "arch": job.arch,
        "scale": job.upscaler.scale,
        "device": str(job.upscaler.device),
        "precision": job.upscaler.precision.name,
        "summary": {"done": done, "skipped": skipped, "failed": failed, "total": len(job.items)},
        "files": [_record(r, str(job.upscaler.device)) for r in reports],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(payload, indent=2) + "\n")
