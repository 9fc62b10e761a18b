"""``jdsr eval``: the standard benchmark protocol, one table per set with its convention in the header."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from jdsr_cli.cli.console import error_console, make_console
from jdsr_cli.cli.model_options import Denoise, DenoiseFrom

if TYPE_CHECKING:
    from rich.table import Table

    from jdsr_cli.commands.report import ScoreTable


def evaluate(
    model: str = typer.Argument(
        ..., help="Bundled name, checkpoint path, hf:// reference, or 'bicubic' (the baseline; needs -s)."
    ),
    data: Path | None = typer.Option(
        None, "--data", help="Folder with benchmark/<Set>/HR (default: $JDSR_DATA)."
    ),
    sets: str = typer.Option("Set5,Set14,B100", "--sets", help="Comma-separated set names."),
    scale: int | None = typer.Option(None, "-s", "--scale", help="Needed only for scale-ambiguous weights."),
    tta: bool = typer.Option(False, "--tta", help="×8 self-ensemble (results are labelled '+')."),
    save_images: Path | None = typer.Option(None, "--save-images", help="Write SR images here, per set."),
    overwrite: bool = typer.Option(False, "--overwrite", help="--save-images: replace SR images already there "
                                   "(default: refuse)."),
    json_report: Path | None = typer.Option(None, "--json", help="Write per-image and mean scores here."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N or mps."),
    precision: str = typer.Option("fp32", "--precision", help="fp32 (default, reproducible), bf16 or fp16."),
    lr_from: str | None = typer.Option(
        None, "--lr-from", help="Make the LR with this learned downscaler (e.g. slr-down-x4) instead of bicubic."
    ),
    degradation: str = typer.Option("bicubic", "--degradation", help="bicubic (the sets' LR) or realistic (a "
                                    "fixed, seeded blur/noise/JPEG LR of each HR: real-photo conditions)."),
    seed: int = typer.Option(0, "--seed", help="--degradation realistic: the seed of the LR."),
    metric: list[str] = typer.Option(
        [], "--metric", metavar="NAME", help="Add a metric to PSNR/SSIM (repeat or comma-separate): niqe = NIQE "
        "of the SR alone, no reference, lower is better (MATLAB niqe_release: rounded BT.601 Y, crop = scale, "
        "96×96 blocks)."
    ),
    denoise: Denoise = 1.0,
    denoise_from: DenoiseFrom = None,
) -> None:
    """Score a model on Set5/Set14/B100: PSNR-Y and SSIM-Y, crop = scale, MATLAB-bicubic LR.

    Examples: jdsr eval imdn-x4 --data ../shared/data --sets Set5,Set14 |
    jdsr eval slr-up-x4 --lr-from slr-down-x4 --data ../shared/data (the superior-LR round trip) |
    jdsr eval photo-x4 --degradation realistic --denoise 0.5 --data ../shared/data (a photo model, half way to
    its clean counterpart, on real-photo conditions) |
    jdsr eval imdn-x4 --metric niqe --data ../shared/data (adds NIQE of the SR; lower is better)
    """
    from jdsr_cli.commands.evaluate_job import EvalRequest, prepare_eval
    from jdsr_cli.commands.report import eval_report, eval_table, write_report
    from jdsr_cli.process.cpu_share import CpuShare

    share = CpuShare()  # scores do not depend on the thread count; a run beside a training gains most
    console = make_console()
    job = prepare_eval(EvalRequest(
        model=model, data=data, sets=sets, scale=scale, tta=tta, save_images=save_images, overwrite=overwrite,
        report=json_report, device=device, precision=precision, lr_from=lr_from, degradation=degradation, seed=seed,
        metrics=tuple(metric), denoise=denoise, denoise_from=denoise_from,
    ))
    for line in job.banner:
        console.print(line, markup=False)
    results = []
    for result in job.run(on_image=lambda _score: share.adjust()):
        results.append(result)
        for _, reason in result.skipped:
            error_console().print(f"skipped {reason}", markup=False)
        for warning in result.warnings:
            error_console().print(f"warning: {warning}", markup=False)
        console.print(_rich_table(eval_table(job, result)))
    if json_report is not None:
        write_report(json_report, eval_report(job, results))


def _rich_table(scores: ScoreTable) -> Table:
    from rich.table import Table

    table = Table(title=scores.title)
    table.add_column(scores.columns[0])
    for column in scores.columns[1:]:
        table.add_column(column, justify="right")
    for row in scores.rows:
        table.add_row(*row)
    table.add_row(*scores.mean, style="bold")
    return table
