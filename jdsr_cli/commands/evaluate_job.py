"""``jdsr eval`` as a job: every option checked once, here, before the first image is scored."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jdsr_cli.checkpoints.interpolate import with_denoise
from jdsr_cli.checkpoints.resolve import resolve_model
from jdsr_cli.commands.downscale import LearnedDownscaler, RealisticDownscaler, create_downscaler
from jdsr_cli.commands.evaluation import (
    ImageScore,
    SetResult,
    bicubic_upscaler,
    evaluate_set,
    find_set,
    saved_images,
)
from jdsr_cli.commands.upscale import check_scale, create_upscaler
from jdsr_cli.engine.upscaler import Upscaler
from jdsr_cli.errors import UsageError
from jdsr_cli.io.atomic import no_clobber
from jdsr_cli.io.destinations import check_output_folder, check_report_file

DEGRADATIONS = ("bicubic", "realistic")
METRICS = ("niqe", "psnr", "ssim")  # PSNR and SSIM are always reported; naming them is harmless


@dataclass(frozen=True)
class EvalRequest:
    """What the user asked for, as parsed (nothing checked yet): the library form of ``jdsr eval``."""

    model: str  # anything --model takes, or "bicubic" (the baseline; needs scale)
    data: Path | None = None  # None: $JDSR_DATA
    sets: str = "Set5,Set14,B100"  # comma-separated
    scale: int | None = None
    tta: bool = False
    save_images: Path | None = None
    overwrite: bool = False  # replace SR images already in save_images
    report: Path | None = None  # the --json path, checked up front
    device: str = "auto"
    precision: str = "fp32"
    lr_from: str | None = None  # a learned downscaler makes the LR
    degradation: str = "bicubic"
    seed: int = 0  # degradation "realistic"
    metrics: tuple[str, ...] = ()  # as given to --metric: repeated and/or comma-separated
    denoise: float = 1.0
    denoise_from: str | None = None


@dataclass(frozen=True)
class EvalJob:
    """One evaluation, validated: the upscaler, the sets and what to add or save; ``run`` scores set by set."""

    name: str  # the model as tables and the report name it
    upscaler: Upscaler
    set_dirs: list[Path]
    header: dict[str, Any]  # the JSON report's fields before "sets"
    banner: list[str]  # lines to show before the first table
    downscaler: LearnedDownscaler | RealisticDownscaler | None = None  # makes the LR instead of the sets' bicubic
    niqe: bool = False
    tta: bool = False  # as asked (tables mark the model "+")
    save_dir: Path | None = None
    overwrite: bool = False

    def run(self, on_image: Callable[[ImageScore], None] | None = None) -> Iterator[SetResult]:
        """Each set's result as soon as it is scored; a saved image never replaces a file unless ``overwrite``."""
        for set_dir in self.set_dirs:
            with no_clobber(not self.overwrite):
                result = evaluate_set(self.upscaler, set_dir, save_dir=self.save_dir, lr_from=self.downscaler,
                                      on_image=on_image, niqe=self.niqe)
            yield result


def prepare_eval(request: EvalRequest) -> EvalJob:
    """Check every option, find the sets, load the model (and the LR's maker); raises a JdsrError if it cannot
    start. Nothing is written, and an SR image that ``save_images`` already holds is refused up front."""
    r = request
    data_dir = r.data or (Path(os.environ["JDSR_DATA"]) if os.environ.get("JDSR_DATA") else None)
    if data_dir is None:
        raise UsageError("--data is required (or set JDSR_DATA): a folder with benchmark/<Set>/HR")
    names = [name.strip() for name in r.sets.split(",") if name.strip()]
    if not names:
        raise UsageError(f"--sets {r.sets!r}: name at least one set, e.g. --sets Set5,Set14,B100")
    set_dirs = [find_set(data_dir, name) for name in names]
    niqe = _with_niqe(r.metrics)
    check_output_folder(r.save_images, "--save-images")
    check_report_file(r.report)
    upscaler, name, arch = _upscaler(r)
    downscaler = _downscaler(r, upscaler.scale)
    if r.save_images is not None and not r.overwrite:
        _refuse_existing(r.save_images, set_dirs, upscaler.scale)
    header = {"model": name, "arch": arch, "lr_from": r.lr_from, "degradation": r.degradation,
              "seed": r.seed if r.degradation == "realistic" else None, "denoise": r.denoise,
              "device": str(upscaler.device), "precision": upscaler.precision.name}
    banner = [downscaler.describe()] if isinstance(downscaler, RealisticDownscaler) else []
    return EvalJob(name, upscaler, set_dirs, header, banner, downscaler, niqe, r.tta, r.save_images, r.overwrite)


def _with_niqe(metrics: tuple[str, ...]) -> bool:
    """Whether ``--metric`` asks for NIQE; any name but niqe, psnr and ssim is a usage error."""
    extra = {m.strip().lower() for item in metrics for m in item.split(",") if m.strip()}
    unknown = sorted(extra - set(METRICS))
    if unknown:
        raise UsageError(f"--metric {', '.join(unknown)}: choose niqe (PSNR and SSIM are always reported)")
    return "niqe" in extra


def _upscaler(r: EvalRequest) -> tuple[Upscaler, str, str]:
    """(the untiled upscaler, the model's name, its arch): the MATLAB-bicubic baseline or the loaded model."""
    if r.model == "bicubic":
        if r.denoise != 1.0 or r.denoise_from is not None:
            raise UsageError("--denoise applies to a photo model, not to bicubic")
        return bicubic_upscaler(r.scale, r.device), f"bicubic ×{r.scale}", "matlab-bicubic"
    loaded = with_denoise(resolve_model(r.model, scale=r.scale, option="MODEL"), r.denoise, r.denoise_from)
    check_scale(r.scale, loaded.config.scale, loaded.source, outscale_hint=False)  # eval has no --outscale
    upscaler = create_upscaler(loaded, device=r.device, precision=r.precision, tile=0, tta=r.tta)
    return upscaler, loaded.name or loaded.source, loaded.config.arch


def _downscaler(r: EvalRequest, scale: int) -> LearnedDownscaler | RealisticDownscaler | None:
    """What makes the LR instead of the sets' bicubic one: a seeded degradation, a learned encoder, or nothing."""
    if r.degradation not in DEGRADATIONS:
        raise UsageError(f"--degradation {r.degradation!r}: choose bicubic or realistic")
    if r.degradation == "realistic" and r.lr_from is not None:
        raise UsageError("--degradation realistic and --lr-from both make the LR; choose one")
    if r.degradation == "realistic":
        return RealisticDownscaler(r.seed)
    if r.lr_from is None:
        return None
    encoder = resolve_model(r.lr_from, scale=scale, role="downscale", option="--lr-from")
    return create_downscaler("superior", loaded=encoder, device=r.device, tile=0)  # type: ignore[return-value]


def _refuse_existing(save_dir: Path, set_dirs: list[Path], scale: int) -> None:
    """An SR image already in ``save_dir`` is a usage error naming it (``--overwrite`` replaces them)."""
    existing = [path for path in saved_images(save_dir, set_dirs, scale) if os.path.lexists(path)]
    if existing:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise UsageError(f"--save-images {save_dir}: {existing[0]} exists{more}; nothing was scored "
                         "(use --overwrite to replace)")
