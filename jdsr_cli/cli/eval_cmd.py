"""``jdsr eval``: the standard benchmark protocol, one table per set with its convention in the header."""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer

from jdsr_cli.cli.console import error_console, make_console
from jdsr_cli.cli.model_options import Denoise, DenoiseFrom


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
    from rich.table import Table

    from jdsr_cli.checkpoints.interpolate import with_denoise
    from jdsr_cli.checkpoints.resolve import resolve_model
    from jdsr_cli.commands.evaluation import bicubic_upscaler, evaluate_set, find_set
    from jdsr_cli.commands.upscale import check_scale, create_upscaler
    from jdsr_cli.errors import UsageError
    from jdsr_cli.io.destinations import check_output_folder, check_report_file
    from jdsr_cli.process.cpu_share import CpuShare

    share = CpuShare()  # scores do not depend on the thread count; a run beside a training gains most
    console = make_console()
    data_dir = data or (Path(os.environ["JDSR_DATA"]) if os.environ.get("JDSR_DATA") else None)
    if data_dir is None:
        raise UsageError("--data is required (or set JDSR_DATA): a folder with benchmark/<Set>/HR")
    names = [name.strip() for name in sets.split(",") if name.strip()]
    if not names:
        raise UsageError(f"--sets {sets!r}: name at least one set, e.g. --sets Set5,Set14,B100")
    set_dirs = [find_set(data_dir, name) for name in names]
    extra = {m.strip().lower() for item in metric for m in item.split(",") if m.strip()}
    unknown = sorted(extra - {"niqe", "psnr", "ssim"})
    if unknown:
        raise UsageError(f"--metric {', '.join(unknown)}: choose niqe (PSNR and SSIM are always reported)")
    with_niqe = "niqe" in extra
    check_output_folder(save_images, "--save-images")
    check_report_file(json_report)
    if model == "bicubic":
        if denoise != 1.0 or denoise_from is not None:
            raise UsageError("--denoise applies to a photo model, not to bicubic")
        upscaler, name, arch = bicubic_upscaler(scale, device), f"bicubic ×{scale}", "matlab-bicubic"
    else:
        loaded = with_denoise(resolve_model(model, scale=scale, option="MODEL"), denoise, denoise_from)
        check_scale(scale, loaded.config.scale, loaded.source, outscale_hint=False)  # eval has no --outscale
        upscaler = create_upscaler(loaded, device=device, precision=precision, tile=0, tta=tta)
        name, arch = loaded.name or loaded.source, loaded.config.arch
    downscaler = None
    if degradation not in ("bicubic", "realistic"):
        raise UsageError(f"--degradation {degradation!r}: choose bicubic or realistic")
    if degradation == "realistic" and lr_from is not None:
        raise UsageError("--degradation realistic and --lr-from both make the LR; choose one")
    if degradation == "realistic":
        from jdsr_cli.commands.downscale import RealisticDownscaler

        downscaler = RealisticDownscaler(seed)
        console.print(downscaler.describe(), markup=False)
    if lr_from is not None:
        from jdsr_cli.commands.downscale import create_downscaler

        encoder = resolve_model(lr_from, scale=upscaler.scale, role="downscale", option="--lr-from")
        downscaler = create_downscaler("superior", loaded=encoder, device=device, tile=0)

    results = []
    for set_dir in set_dirs:
        result = evaluate_set(upscaler, set_dir, save_dir=save_images, lr_from=downscaler,  # type: ignore[arg-type]
                              on_image=lambda _score: share.adjust(), niqe=with_niqe)
        results.append(result)
        for _, reason in result.skipped:
            error_console().print(f"skipped {reason}", markup=False)
        for warning in result.warnings:
            error_console().print(f"warning: {warning}", markup=False)
        plus = "+" if tta else ""
        table = Table(title=f"{name}{plus} on {result.name} ×{result.scale} — {result.convention}")
        table.add_column("image")
        table.add_column("PSNR (dB)", justify="right")
        table.add_column("SSIM", justify="right")
        if downscaler is not None:
            table.add_column("LR vs bicubic LR (dB)", justify="right")
        if with_niqe:
            table.add_column("NIQE (SR, lower is better)", justify="right")

        def lr_cell(value: float | None) -> list[str]:
            return [] if downscaler is None else [f"{value:.2f}"]

        def niqe_cell(value: float | None) -> list[str]:
            return [] if not with_niqe else ["n/a" if value is None else f"{value:.4f}"]

        for image in result.images:
            table.add_row(image.name, f"{image.psnr:.2f}", f"{image.ssim:.4f}", *lr_cell(image.lr_psnr),
                          *niqe_cell(image.niqe))
        table.add_row("mean", f"{result.psnr:.2f}", f"{result.ssim:.4f}", *lr_cell(result.lr_psnr),
                      *niqe_cell(result.niqe), style="bold")
        console.print(table)
    if json_report is not None:
        from jdsr_cli.io.atomic import atomic_write_text

        payload = {"model": name, "arch": arch, "lr_from": lr_from, "degradation": degradation,
                   "seed": seed if degradation == "realistic" else None, "denoise": denoise, "device": str(upscaler.device),
                   "precision": upscaler.precision.name, "sets": [r.to_json() for r in results]}
        json_report.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(json_report, json.dumps(payload, indent=2) + "\n")
