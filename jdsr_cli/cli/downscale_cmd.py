"""``jdsr downscale``: MATLAB-exact bicubic, area, Lanczos, or the learned superior LR."""

from __future__ import annotations

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
    parse_tile,
    run_with_progress,
)
from jdsr_cli.cli.console import error_console, make_console


def downscale(
    inputs: list[str] = typer.Argument(..., metavar="INPUT...", help="Image files, folders or glob patterns."),
    scale: int | None = typer.Option(None, "-s", "--scale", help="Shrink factor 2, 3 or 4."),
    output: OutputOption = None,
    method: str = typer.Option("bicubic", "--method", help="bicubic (MATLAB-exact), superior, area or lanczos."),
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
    from jdsr_cli.errors import JdsrError

    console = make_console(quiet=quiet)
    errors = error_console()
    try:
        job = _prepare(inputs, output, scale, method, model, fit, width, height, recursive, suffix, fmt, alpha,
                       device, tile)
    except JdsrError as error:  # nothing ran: bad option, unknown or unloadable model, missing device
        errors.print(f"error: {error}", markup=False)
        raise typer.Exit(EXIT_USAGE) from None

    from jdsr_cli.commands.downscale import make_processor

    def processor(progress):  # type: ignore[no-untyped-def]
        return make_processor(
            job["downscaler"], job["size"], fit=fit, alpha=alpha, progress=progress, fmt=fmt, quality=quality,
            lossless=lossless, strip_metadata=strip_metadata, max_pixels=max_pixels,
        )

    if not quiet:
        console.print(f"{job['label']}; {len(job['items'])} image(s)", markup=False)
    reports = run_with_progress(console, job["items"], job["naming"], processor, overwrite, fail_fast, _describe)
    header = {"method": method, "model": job["model"], "scale": scale, "fit": fit}
    defaults = {"size_in": None, "size_out": None, "method": method}
    finish(console, errors, "downscale", job["items"], reports, json_report, header, defaults)


def _describe(d: dict[str, Any]) -> str:
    return d["method"] + (f", alpha {d['alpha']}" if d.get("alpha") else "")


def _prepare(
    inputs: list[str], output: Path | None, scale: int | None, method: str, model: str | None, fit: str,
    width: int | None, height: int | None, recursive: bool, suffix: str | None, fmt: str | None, alpha: str,
    device: str, tile: str,
) -> dict[str, Any]:
    """Validate everything that can be validated before the first image is read."""
    from jdsr_cli.commands.batch import OutputNaming
    from jdsr_cli.commands.downscale import ALPHA_MODES, FIT_RULES, METHODS, DownscaleSize, create_downscaler
    from jdsr_cli.errors import UsageError
    from jdsr_cli.commands.upscale import output_extension

    if method not in METHODS:
        raise UsageError(f"--method {method!r}: choose {', '.join(METHODS)}")
    if fit not in FIT_RULES:
        raise UsageError(f"--fit {fit!r}: choose crop or pad")
    if alpha not in ALPHA_MODES:
        raise UsageError(f"--alpha {alpha!r}: choose {', '.join(ALPHA_MODES)} for downscale")
    if model is not None and method != "superior":
        raise UsageError(f"--model is for --method superior (the learned encoder), not {method}")
    size = DownscaleSize(scale, width, height)
    if method == "superior" and size.scale is None:
        raise UsageError("--method superior shrinks by the encoder's factor: use -s 2|3|4, not --width/--height")
    extension = output_extension(fmt)
    items = inputs_for_this_rank(inputs, recursive)
    loaded, model_name, label = None, None, f"{method} ({'MATLAB imresize' if method == 'bicubic' else 'MATLAB kernel'})"
    if method == "superior":
        from jdsr_cli.checkpoints.resolve import resolve_model

        loaded = resolve_model(model, scale=scale, role="downscale")  # -s settles a ×2/×3 head without config
        model_name = loaded.name or loaded.source
        if loaded.config.scale != scale:
            raise UsageError(f"-s {scale} but {model_name} shrinks ×{loaded.config.scale}")
    downscaler = create_downscaler(method, loaded=loaded, device=device, tile=parse_tile(tile))
    if method == "superior":
        runner = downscaler.runner  # type: ignore[union-attr]
        label = f"superior LR with {model_name} on {runner.device} {runner.precision.name}"
    naming = OutputNaming(suffix if suffix is not None else size.suffix(), output, extension)
    return {"items": items, "naming": naming, "size": size, "downscaler": downscaler, "model": model_name,
            "label": label}
