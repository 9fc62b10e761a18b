"""What the image commands (upscale, downscale) share on the CLI side: progress, summary, JSON report."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE = 0, 1, 2

# The options every image command takes, declared once (``name: OutputOption = None`` in a command).
OutputOption = Annotated[Path | None, typer.Option("-o", "--output", help="Output folder (default: next to each input).")]
RecursiveOption = Annotated[
    bool, typer.Option("-r", "--recursive", help="Recurse into folders; mirror subfolders under -o.")
]
OverwriteOption = Annotated[bool, typer.Option("--overwrite", help="Replace existing outputs (default: skip them).")]
FailFastOption = Annotated[bool, typer.Option("--fail-fast", help="Stop at the first failed file.")]
FormatOption = Annotated[str | None, typer.Option("--format", help="png, jpg, webp or tiff (default: the input's).")]
QualityOption = Annotated[int | None, typer.Option("--quality", min=1, max=100, help="JPEG/WebP quality.")]
LosslessOption = Annotated[bool, typer.Option("--lossless", help="Lossless WebP.")]
StripMetadataOption = Annotated[bool, typer.Option("--strip-metadata", help="Do not copy EXIF and ICC profile.")]
MaxPixelsOption = Annotated[int | None, typer.Option("--max-pixels", help="Raise the decompression-bomb limit.")]
JsonReportOption = Annotated[Path | None, typer.Option("--json", help="Write a machine-readable report here.")]
QuietOption = Annotated[bool, typer.Option("-q", "--quiet", help="Print errors only.")]

#: details dict of a finished file -> the text after "done    in -> out (...)"
Describe = Callable[[dict[str, Any]], str]


def launcher_rank() -> tuple[int, int, int]:
    """(rank, world size, local rank) under torchrun; (0, 1, 0) when run directly."""
    import os

    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


def inputs_for_this_rank(inputs: list[str], recursive: bool) -> list[Any]:
    """The input files this process handles: all of them, or every world-th one under torchrun."""
    from jdsr_cli.commands.batch import collect_inputs, shard_for_rank
    from jdsr_cli.errors import UsageError

    items = collect_inputs(inputs, recursive=recursive)
    if not items:
        raise UsageError(f"no images found in {', '.join(inputs)}")
    rank, world, _ = launcher_rank()
    return shard_for_rank(items, rank, world)


def parse_tile(value: str) -> int | str:
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


def run_with_progress(console, items, naming, processor, overwrite, fail_fast, describe: Describe):  # type: ignore[no-untyped-def]
    """Live bars (files + tiles of the current image) on a terminal; one line per file otherwise.

    ``processor(progress)`` builds the per-file function with a tile-progress callback (or None).
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from jdsr_cli.commands.batch import run_batch

    def line(report) -> None:  # type: ignore[no-untyped-def]
        if report.status == "done":
            d = report.details
            console.print(
                f"done    {report.input} -> {report.output} ({d['size_in'][0]}x{d['size_in'][1]} -> "
                f"{d['size_out'][0]}x{d['size_out'][1]}, {report.seconds:.2f} s, {describe(d)})",
                markup=False,
            )
            if d.get("note"):
                console.print(f"        note: {d['note']}", markup=False)
        elif report.status == "skipped":
            console.print(f"skipped {report.input}: {report.error}", markup=False)

    from jdsr_cli.cli.console import live_progress_allowed

    if not live_progress_allowed(console):
        return run_batch(items, naming, processor(None), overwrite=overwrite, fail_fast=fail_fast, on_done=line)

    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, transient=False,
    ) as bars:
        files = bars.add_task("images", total=len(items))
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
            items, naming, processor(on_tile), overwrite=overwrite, fail_fast=fail_fast,
            on_start=start, on_done=done,
        )


def finish(console, errors, command: str, items: list, reports: list, json_report: Path | None,  # type: ignore[type-arg]
           header: dict[str, Any], record_defaults: dict[str, Any]) -> None:
    """Print failures and the summary, write the JSON report, and exit with the batch's code."""
    for report in reports:
        if report.status == "failed":
            errors.print(f"failed: {report.error}", markup=False)
    done = sum(r.status == "done" for r in reports)
    skipped = sum(r.status == "skipped" for r in reports)
    failed = sum(r.status == "failed" for r in reports)
    not_run = len(items) - len(reports)
    summary = f"{done} done, {skipped} skipped, {failed} failed" + (f", {not_run} not run (--fail-fast)" if not_run else "")
    console.print(summary, markup=False)
    if json_report is not None:
        rank, world, _ = launcher_rank()
        if world > 1:  # one report per rank: report.json -> report.rank0.json, report.rank1.json, ...
            json_report = json_report.with_name(f"{json_report.stem}.rank{rank}{json_report.suffix}")
        counts = {"done": done, "skipped": skipped, "failed": failed, "total": len(items)}
        _write_report(json_report, command, header, counts, reports, record_defaults)
    raise typer.Exit(EXIT_SOME_FAILED if failed or not_run else EXIT_OK)


def _record(report: Any, defaults: dict[str, Any]) -> dict[str, Any]:
    """Every record has the same keys, whatever its status."""
    record = report.to_json()
    for key, value in defaults.items():
        record.setdefault(key, value)
    return record


def _write_report(path: Path, command: str, header: dict[str, Any], counts: dict[str, int], reports: list,  # type: ignore[type-arg]
                  defaults: dict[str, Any]) -> None:
    from jdsr_cli import __version__
    from jdsr_cli.io.atomic import atomic_write_text

    payload = {"jdsr_version": __version__, "command": command, **header, "summary": counts,
               "files": [_record(r, defaults) for r in reports]}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(payload, indent=2) + "\n")
