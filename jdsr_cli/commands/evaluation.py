"""The standard SR benchmark protocol (``jdsr eval``), as in EDSR/RCAN/BasicSR with ``test_y_channel``.

1. HR is modcropped to a multiple of the scale (top-left part kept).
2. LR is the stored ``LR_bicubic/X{s}/{name}x{s}.png`` when the set has one, else the MATLAB-bicubic
   downscale of the modcropped HR (identical where both exist; tested on Set5/Set14).
3. The model runs on the whole LR image (no tiles, so figures are exact), SR is rounded to uint8.
4. PSNR and SSIM on BT.601 Y, border crop = scale, float64. Gray images (Set14 ``bridge``) go through
   RGB replication, so every image uses the same Y formula.

With ``niqe=True`` each image also gets NIQE (no reference, lower is better; :mod:`jdsr_cli.ops.niqe`) of the
uint8 SR alone: rounded BT.601 Y, border crop = scale, MATLAB's reference algorithm otherwise. An SR too small
for one 96×96 NIQE block after the crop has no NIQE (None) and is left out of the mean.

With ``lr_from`` (a learned downscaler, ``jdsr eval MODEL --lr-from slr-down-x4``) step 2 becomes the
downscaler's 8-bit output on the modcropped HR, and each image also records how LR-like it stays: PSNR-Y
(crop = scale) of that LR against the MATLAB-bicubic LR.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from jdsr_cli.engine.device import Precision, resolve_device
from jdsr_cli.engine.upscaler import Upscaler
from jdsr_cli.errors import UsageError
from jdsr_cli.io.image import Image, read_image, write_image
from jdsr_cli.io.quantize import to_uint8
from jdsr_cli.ops.metrics import SSIM_WIN, MetricConvention
from jdsr_cli.ops.niqe import NIQE_BLOCK
from jdsr_cli.ops.resize import imresize, matlab_downscale_uint8, modcrop

if TYPE_CHECKING:
    from jdsr_cli.commands.downscale import LearnedDownscaler, RealisticDownscaler

STANDARD_SETS = ("Set5", "Set14", "B100")


@dataclass(frozen=True)
class ImageScore:
    name: str
    psnr: float
    ssim: float
    lr_psnr: float | None = None  # the LR fed to the model vs the MATLAB-bicubic LR (with lr_from)
    niqe: float | None = None  # NIQE of the SR alone (with niqe=True; None when too small to score)


@dataclass
class SetResult:
    """One benchmark set's scores under one convention."""

    name: str
    scale: int
    convention: str  # e.g. "PSNR-Y / SSIM-Y crop=4, uint8 SR, MATLAB-bicubic LR"
    self_ensemble: bool
    images: list[ImageScore] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (image name, reason)
    warnings: list[str] = field(default_factory=list)  # damage a decoder worked around, naming the file
    with_niqe: bool = False  # NIQE was asked for: the JSON carries it (per image and mean)

    @property
    def psnr(self) -> float:
        return float(np.mean([i.psnr for i in self.images]))

    @property
    def ssim(self) -> float:
        return float(np.mean([i.ssim for i in self.images]))

    @property
    def lr_psnr(self) -> float | None:
        values = [i.lr_psnr for i in self.images if i.lr_psnr is not None]
        return float(np.mean(values)) if values else None

    @property
    def niqe(self) -> float | None:
        """Mean NIQE over the images that have one (None when none has)."""
        values = [i.niqe for i in self.images if i.niqe is not None]
        return float(np.mean(values)) if values else None

    def to_json(self) -> dict[str, Any]:
        def niqe(value: float | None) -> dict[str, Any]:
            if not self.with_niqe:
                return {}
            return {"niqe": None if value is None else round(value, 4)}

        return {
            "set": self.name,
            "scale": self.scale,
            "convention": self.convention,
            "self_ensemble": self.self_ensemble,
            "psnr": round(self.psnr, 4),
            "ssim": round(self.ssim, 5),
            "lr_psnr": None if self.lr_psnr is None else round(self.lr_psnr, 4),
            **niqe(self.niqe),
            "skipped": [{"name": name, "reason": reason} for name, reason in self.skipped],
            "images": [{"name": i.name, "psnr": round(i.psnr, 4), "ssim": round(i.ssim, 5),
                        **({} if i.lr_psnr is None else {"lr_psnr": round(i.lr_psnr, 4)}), **niqe(i.niqe)}
                       for i in self.images],
        }


class MatlabBicubic(torch.nn.Module):
    """MATLAB bicubic upscaling as a network: the baseline row is scored by the same protocol code."""

    def __init__(self, scale: int) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return imresize(x, scale=self.scale)


def bicubic_upscaler(scale: int | None, device: str = "cpu") -> Upscaler:
    """An fp32, untiled upscaler running ``MatlabBicubic`` (``jdsr eval bicubic -s S``)."""
    if scale not in (2, 3, 4):
        raise UsageError("the bicubic baseline needs -s 2, 3 or 4")
    return Upscaler(
        MatlabBicubic(scale), scale=scale, device=resolve_device(device),
        precision=Precision("fp32", torch.float32), tile=0,
    )


def find_set(data_dir: Path, name: str) -> Path:
    """A set folder (``<data>/benchmark/<name>`` or ``<data>/<name>``) holding an ``HR`` folder."""
    for candidate in (data_dir / "benchmark" / name, data_dir / name):
        if (candidate / "HR").is_dir():
            return candidate
    raise UsageError(f"{data_dir}: no benchmark set {name!r} (expected {data_dir}/benchmark/{name}/HR)")


def smallest_scorable_side(scale: int) -> int:
    """HR sides below this leave no pixel to score: the border crop (= scale) on both sides and one SSIM window."""
    return 2 * scale + SSIM_WIN


def benchmark_pairs(
    set_dir: Path, scale: int, on_skip: Callable[[str, str], None] | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """Yield (name, LR, modcropped HR) as H×W×3 uint8 arrays, in file-name order.

    An HR image too small to score at this scale is passed to ``on_skip`` with the reason instead; what a decoder
    noticed in a file it still decoded (a PNG's bad chunk CRC...) goes to ``on_warning``, naming the file.
    """
    smallest = smallest_scorable_side(scale)
    def read(path: Path) -> np.ndarray:
        image = read_image(path)
        for warning in image.warnings if on_warning is not None else ():
            on_warning(warning if str(path) in warning else f"{path}: {warning}")
        return image.pixels

    for hr_path in hr_files(set_dir):
        pixels = read(hr_path)
        if min(pixels.shape[:2]) < smallest:
            if on_skip is not None:
                on_skip(hr_path.stem, f"{hr_path}: {pixels.shape[1]}x{pixels.shape[0]} is too small to score at "
                                      f"×{scale} (needs at least {smallest} px a side)")
            continue
        hr = modcrop(_rgb_uint8(pixels), scale)
        stored = set_dir / "LR_bicubic" / f"X{scale}" / f"{hr_path.stem}x{scale}.png"
        lr = _rgb_uint8(read(stored)) if stored.is_file() else matlab_downscale_uint8(hr, scale)
        yield hr_path.stem, lr, hr


def hr_files(set_dir: Path) -> list[Path]:
    """The set's HR images (``HR/*.png``), in file-name order: the order of scoring and of the tables."""
    return sorted(p for p in (set_dir / "HR").iterdir() if p.suffix.lower() == ".png")


def saved_image(save_dir: Path, set_dir: Path, name: str, scale: int) -> Path:
    """Where ``save_dir`` gets the SR of HR image ``name``: one folder per set, ``NAME_xS.png``."""
    return save_dir / set_dir.name / f"{name}_x{scale}.png"


def saved_images(save_dir: Path, set_dirs: list[Path], scale: int) -> list[Path]:
    """Every SR image an evaluation of ``set_dirs`` may save into ``save_dir`` (the too small are among them)."""
    return [saved_image(save_dir, set_dir, hr.stem, scale) for set_dir in set_dirs if (set_dir / "HR").is_dir()
            for hr in hr_files(set_dir)]


def _rgb_uint8(pixels: np.ndarray) -> np.ndarray:
    rgb = np.repeat(pixels, 3, axis=2) if pixels.shape[2] == 1 else pixels[:, :, :3]
    return to_uint8(rgb)


def evaluate_set(
    upscaler: Upscaler,
    set_dir: Path,
    *,
    save_dir: Path | None = None,
    on_image: Callable[[ImageScore], None] | None = None,
    lr_from: LearnedDownscaler | RealisticDownscaler | None = None,
    niqe: bool = False,
) -> SetResult:
    """Score one set with the standard protocol; optionally save each SR image as PNG and add NIQE of the SR."""
    scale = upscaler.scale
    convention = MetricConvention.standard(scale)
    source = "MATLAB-bicubic LR" if lr_from is None else f"LR from {lr_from.name} (8-bit)"
    label = f"{convention.psnr_label} / {convention.ssim_label}, uint8 SR, {source}"
    if niqe:
        label += f"; {convention.niqe_label} of the SR (lower is better)"
    result = SetResult(set_dir.name, scale, label, upscaler.tta, with_niqe=niqe)
    if lr_from is not None and getattr(lr_from, "scale", scale) != scale:
        raise UsageError(f"--lr-from {lr_from.name} shrinks ×{lr_from.scale} but the model enlarges ×{scale}")
    def skip(name: str, reason: str) -> None:
        result.skipped.append((name, reason))

    for name, lr, hr in benchmark_pairs(set_dir, scale, skip, result.warnings.append):
        lr_psnr = None
        if lr_from is not None:
            small = lr_from.resize(hr.astype(np.float32) / 255.0, lr.shape[1], lr.shape[0], 8)
            bicubic_lr, lr = lr, _rgb_uint8(small)
            lr_psnr = convention.psnr(lr, bicubic_lr)
        sr_float = upscaler.upscale(lr.astype(np.float32) / 255.0).pixels
        sr = to_uint8(sr_float)
        if sr.shape != hr.shape:
            raise UsageError(f"{set_dir / 'HR' / name}.png: SR is {sr.shape}, HR is {hr.shape} (wrong --scale?)")
        score = ImageScore(name, convention.psnr(sr, hr), convention.ssim(sr, hr), lr_psnr,
                           _niqe_or_none(convention, sr) if niqe else None)
        result.images.append(score)
        if save_dir is not None:
            _save(saved_image(save_dir, set_dir, name, scale), sr)
        if on_image is not None:
            on_image(score)
    if not result.images:
        folder = f"{set_dir / 'HR'}{os.sep}"
        reasons = [reason.removeprefix(folder) for _, reason in result.skipped]
        more = f" (+{len(reasons) - 3} more)" if len(reasons) > 3 else ""
        why = f"; {'; '.join(reasons[:3])}{more}" if reasons else ""
        raise UsageError(f"{set_dir / 'HR'}: no PNG images to score{why}")
    return result


def _niqe_or_none(convention: MetricConvention, sr: np.ndarray) -> float | None:
    """NIQE of the SR under ``convention``, or None when the cropped SR holds no whole 96×96 block."""
    if min(sr.shape[:2]) - 2 * convention.crop < NIQE_BLOCK:
        return None
    return convention.niqe(sr)


def _save(path: Path, sr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(path, Image(pixels=sr.astype(np.float32) / 255.0, bit_depth=8, icc_profile=None, exif=None,
                            source_format="PNG"))
