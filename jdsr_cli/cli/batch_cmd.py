"""What the image commands (upscale, downscale) share on the CLI side: options, progress, summary, report."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from jdsr_cli.cli.console import printable

if TYPE_CHECKING:
    from rich.console import Console

    from jdsr_cli.commands.batch import BatchOutcome, FileReport
    from jdsr_cli.commands.imagejob import ImageJob
    from jdsr_cli.process.cpu_share import CpuShare

EXIT_OK, EXIT_SOME_FAILED = 0, 1

# The options every image command takes, declared once (``name: OutputOption = None`` in a command).
OutputOption = Annotated[Path | None, typer.Option(
    "-o", "--output", help="Output folder, or the output file's name for one input (default: next to each input).")]
RecursiveOption = Annotated[
    bool, typer.Option("-r", "--recursive", help="Recurse into folders; mirror subfolders under -o.")
]
OverwriteOption = Annotated[bool, typer.Option("--overwrite", help="Replace existing outputs (default: skip them).")]
FailFastOption = Annotated[bool, typer.Option("--fail-fast", help="Stop at the first failed file.")]
FormatOption = Annotated[str | None, typer.Option("--format", help="png, jpg, webp or tiff (default: the input's).")]
QualityOption = Annotated[int | None, typer.Option("--quality", help="JPEG/WebP quality, 1..100.")]
LosslessOption = Annotated[bool, typer.Option("--lossless", help="Lossless WebP.")]
StripMetadataOption = Annotated[bool, typer.Option("--strip-metadata", help="Do not copy EXIF and ICC profile.")]
MaxPixelsOption = Annotated[int | None, typer.Option(
    "--max-pixels", help="Largest input in pixels (decompression-bomb limit, default ~89.5M; 0 = none); "
    "outputs may have 16× as many.")]
StrictOption = Annotated[bool, typer.Option("--strict", help="Fail files the decoder complained about "
                                            "(truncated or corrupt data) instead of warning.")]
JsonReportOption = Annotated[Path | None, typer.Option("--json", help="Write a machine-readable report here.")]
QuietOption = Annotated[bool, typer.Option("-q", "--quiet", help="Print errors only.")]

#: details dict of a finished file -> the text after "done    in -> out (...)"
Describe = Callable[[dict[str, Any]], str]


def run_and_finish(console: Console, job: ImageJob, *, fail_fast: bool, json_report: Path | None,
                   describe: Describe, quiet: bool = False, cpu_share: CpuShare | None = None) -> None:
    """Show the banner, run the batch with progress, print failures and the summary, write the report, exit."""
    from jdsr_cli.cli.console import error_console
    from jdsr_cli.commands.report import batch_report, summary_line, write_report
    from jdsr_cli.commands.sharding import rank_report_path

    if not quiet:
        for line in job.banner:
            console.print(line, markup=False)
    outcome = _run_with_progress(console, job, fail_fast, describe, cpu_share)
    errors = error_console()
    _print_failures(errors, outcome)
    if outcome.interrupted is not None:
        errors.print(f"{outcome.interrupted}: stopped after {len(outcome.reports)} of {outcome.total} file(s); "
                     f"the file in progress was not written{_resumes(job, outcome)}", markup=False)
    console.print(summary_line(outcome, fail_fast=fail_fast), markup=False)
    if json_report is not None:
        write_report(rank_report_path(json_report), batch_report(job.command, job.header, outcome, job.record_defaults))
    if outcome.interrupted is not None:
        raise typer.Exit(outcome.interrupted.exit_code)
    raise typer.Exit(EXIT_SOME_FAILED if outcome.count("failed") or outcome.not_run else EXIT_OK)


def _resumes(job: ImageJob, outcome: BatchOutcome) -> str:
    """What a re-run keeps when the file stopped was a video (its finished segments)."""
    from jdsr_cli.io.video import is_video_path

    stopped = job.plan[len(outcome.reports)] if len(outcome.reports) < len(job.plan) else None
    if stopped is None or not is_video_path(stopped.item.path):
        return ""
    return " (the same command resumes the video from its last finished segment)"


def _print_failures(errors: Console, outcome: BatchOutcome) -> None:
    from jdsr_cli.cli.console import debug_enabled

    for report in outcome.reports:
        if report.status == "failed":
            if report.traceback and debug_enabled():
                errors.print(report.traceback, markup=False, end="")
            errors.print(printable(f"failed: {report.error}"), markup=False)


def _line(console: Console, report: FileReport, describe: Describe) -> None:
    if report.status == "done":
        d = report.details
        console.print(printable(
            f"done    {report.input} -> {report.output} ({d['size_in'][0]}x{d['size_in'][1]} -> "
            f"{d['size_out'][0]}x{d['size_out'][1]}, {report.seconds:.2f} s, {describe(d)}{_shared_cpu(d)})"),
            markup=False,
        )
        if d.get("note"):
            console.print(f"        note: {d['note']}", markup=False)
        for warning in report.warnings:
            console.print(f"        warning: {warning}", style="yellow", markup=False)
    elif report.status == "skipped":
        console.print(printable(f"skipped {report.input}: {report.error}"), markup=False)


def _shared_cpu(d: dict[str, Any]) -> str:
    """", 1 of 2 CPU threads (others busy)" when CPU sharing ran this file on fewer threads than it could."""
    threads, most = d.get("threads"), d.get("max_threads")
    if threads is None or most is None or threads >= most:
        return ""
    return f", {threads} of {most} CPU threads (others busy)"


def _fps(bars: Any, task_id: Any) -> str:
    """The frames-per-second a video's bar shows (empty for an image's tiles, or before a speed is known)."""
    task = next((t for t in bars.tasks if t.id == task_id), None)
    if task is None or not str(task.description).startswith("frames") or not task.speed:
        return ""
    return f"{task.speed:.2f} fps"


def _run_with_progress(
    console: Console, job: ImageJob, fail_fast: bool, describe: Describe, cpu_share: CpuShare | None
) -> BatchOutcome:
    """Live bars (files + tiles of the current image) on a terminal; one line per file otherwise."""
    from rich.markup import escape
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from jdsr_cli.cli.console import live_progress_allowed
    from jdsr_cli.commands.imagejob import run_image_job

    if not live_progress_allowed(console):
        return run_image_job(job, fail_fast=fail_fast, on_done=lambda report: _line(console, report, describe),
                             cpu_share=cpu_share)

    from jdsr_cli.io.video import is_video_path

    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TextColumn("left"), TimeRemainingColumn(compact=True), TextColumn("{task.fields[rate]}"),
        console=console, transient=False,
    ) as bars:
        files = bars.add_task("images", total=len(job.plan), rate="")
        tiles = bars.add_task("tiles", total=1, visible=False, rate="")
        unit, fresh = ["tiles"], [True]  # tiles of an image or frames of a video; no progress seen yet

        def on_tile(done: int, total: int) -> None:
            # after the last tile the file is still being assembled and encoded (seconds for a big PNG)
            what = f"{unit[0]} done, writing" if done == total else unit[0]
            if fresh[0]:  # a resumed video starts part-way: its speed counts from here
                fresh[0] = False
                bars.reset(tiles, completed=done, total=total, visible=True, description=what)
                return
            bars.update(tiles, completed=done, total=total, visible=True, description=what, rate=_fps(bars, tiles))
            if done == total:  # drawn at least once, however fast the file went between two timed refreshes
                bars.refresh()

        def start(index: int, planned: Any) -> None:
            unit[0], fresh[0] = ("frames" if is_video_path(planned.item.path) else "tiles"), True
            bars.update(files, description=escape(printable(planned.item.path.name)))
            bars.reset(tiles, total=1, visible=False, description=unit[0], rate="")

        def done(report: FileReport) -> None:
            bars.advance(files)
            _line(console, report, describe)

        return run_image_job(job, fail_fast=fail_fast, progress=on_tile, on_start=start, on_done=done,
                             cpu_share=cpu_share)
