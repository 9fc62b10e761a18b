"""PSNR and SSIM under the SR literature's convention (EDSR/RCAN/BasicSR ``test_y_channel=True``).

Why a convention object: PSNR on RGB is ~2 dB below PSNR on Y for the same model, and crop/rounding
shift numbers too, so every figure jdsr prints names its convention via :class:`MetricConvention` (which
also applies the no-reference NIQE of :mod:`jdsr_cli.ops.niqe` to an SR output alone).

Everything here is numpy float64 on the CPU: inputs are H×W×C or H×W arrays in 0..255 (uint8, or float
already in that range). Y is BT.601 per :mod:`jdsr_cli.ops.color` (grayscale replicated to RGB, so
Y = 16 + 219/255 · L).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from jdsr_cli.ops.color import rgb_to_y_np

__all__ = ["MetricConvention", "gaussian_window_1d", "psnr", "ssim"]

SSIM_WIN = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def _prepare(sr: np.ndarray, hr: np.ndarray, crop: int, y_channel: bool) -> tuple[np.ndarray, np.ndarray]:
    """Both images as float64 H×W×C (C = 1 for Y or grayscale), Y-converted and border-cropped."""
    a = np.asarray(sr)
    b = np.asarray(hr)
    if a.shape != b.shape:
        raise ValueError(f"SR and HR shapes differ: {a.shape} vs {b.shape}")
    if a.ndim not in (2, 3):
        raise ValueError(f"expected H×W or H×W×C images, got shape {a.shape}")
    if crop < 0 or int(crop) != crop:
        raise ValueError(f"crop must be a non-negative integer, got {crop!r}")
    if y_channel:
        if a.ndim == 3 and a.shape[2] not in (1, 3):
            raise ValueError(f"Y channel needs RGB or grayscale images, got {a.shape[2]} channels")
        a = rgb_to_y_np(a)[..., None]
        b = rgb_to_y_np(b)[..., None]
    else:
        a = a.astype(np.float64)
        b = b.astype(np.float64)
        if a.ndim == 2:
            a, b = a[..., None], b[..., None]
    h, w = a.shape[:2]
    if 2 * crop >= h or 2 * crop >= w:
        raise ValueError(f"crop={crop} removes the whole {h}×{w} image")
    if crop:
        a = a[crop:-crop, crop:-crop]
        b = b[crop:-crop, crop:-crop]
    return a, b


def psnr(
    sr: np.ndarray, hr: np.ndarray, *, crop: int, y_channel: bool = True, data_range: float = 255.0
) -> float:
    """10·log10(data_range² / MSE) over the cropped (Y) images, in float64; ``inf`` when identical.

    ``crop`` pixels are removed on every side (the literature uses crop = scale). With
    ``y_channel=False`` the MSE is taken over all channels together (BasicSR's RGB convention).
    """
    a, b = _prepare(sr, hr, crop, y_channel)
    mse = float(np.mean((a - b) ** 2))
    if mse == 0.0:
        return float("inf")
    return 10.0 * math.log10(data_range * data_range / mse)


def gaussian_window_1d(size: int = SSIM_WIN, sigma: float = SSIM_SIGMA) -> np.ndarray:
    """Normalised 1-D Gaussian; its outer product is MATLAB's ``fspecial('gaussian', size, sigma)``."""
    r = (size - 1) / 2.0
    x = np.arange(size, dtype=np.float64) - r
    g = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return g / g.sum()


def _filter_valid(img: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Separable 'valid' correlation of a 2-D array with g⊗g (MATLAB ``filter2(w, x, 'valid')``)."""
    t = sliding_window_view(img, g.size, axis=0) @ g
    return sliding_window_view(t, g.size, axis=1) @ g


def _ssim_2d(a: np.ndarray, b: np.ndarray, data_range: float, g: np.ndarray) -> float:
    """Mean SSIM map of Wang et al. 2004 over the valid region, as ``ssim_index`` / BasicSR."""
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    mu1 = _filter_valid(a, g)
    mu2 = _filter_valid(b, g)
    mu1_sq, mu2_sq, mu12 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    s1 = _filter_valid(a * a, g) - mu1_sq
    s2 = _filter_valid(b * b, g) - mu2_sq
    s12 = _filter_valid(a * b, g) - mu12
    smap = ((2 * mu12 + c1) * (2 * s12 + c2)) / ((mu1_sq + mu2_sq + c1) * (s1 + s2 + c2))
    return float(smap.mean())


def ssim(
    sr: np.ndarray, hr: np.ndarray, *, crop: int, y_channel: bool = True, data_range: float = 255.0
) -> float:
    """SSIM (Wang et al. 2004): 11×11 Gaussian window σ=1.5, K1=0.01, K2=0.03, 'valid' filtering.

    Same inputs and cropping as :func:`psnr`; multi-channel (``y_channel=False``) averages the
    per-channel SSIM, as BasicSR's ``calculate_ssim``. Identical images give exactly 1.0.
    """
    a, b = _prepare(sr, hr, crop, y_channel)
    if a.shape[0] < SSIM_WIN or a.shape[1] < SSIM_WIN:
        raise ValueError(
            f"SSIM needs at least {SSIM_WIN}×{SSIM_WIN} pixels after cropping, got {a.shape[:2]}"
        )
    if np.array_equal(a, b):
        return 1.0
    g = gaussian_window_1d()
    return float(np.mean([_ssim_2d(a[..., c], b[..., c], data_range, g) for c in range(a.shape[2])]))


Rounding = Literal["uint8", "none"]


@dataclass(frozen=True)
class MetricConvention:
    """How a PSNR/SSIM figure was computed; ``label()`` is printed next to every number.

    ``rounding="uint8"``: the SR output is rounded (half away from zero) and clipped to uint8 before
    scoring, as the literature does; ``"none"`` scores float output as is (labelled ``float``).
    """

    y_channel: bool = True
    crop: int = 0
    rounding: Rounding = "uint8"

    def __post_init__(self) -> None:
        if self.rounding not in ("uint8", "none"):
            raise ValueError(f"rounding must be 'uint8' or 'none', got {self.rounding!r}")
        if self.crop < 0:
            raise ValueError(f"crop must be >= 0, got {self.crop}")

    @classmethod
    def standard(cls, scale: int) -> MetricConvention:
        """The literature's convention at ×scale: Y channel, crop = scale, uint8 rounding."""
        return cls(y_channel=True, crop=int(scale), rounding="uint8")

    def label(self, metric: str = "PSNR") -> str:
        """E.g. ``PSNR-Y crop=4``, ``SSIM-RGB crop=0``, ``PSNR-Y crop=2 float``."""
        text = f"{metric}-{'Y' if self.y_channel else 'RGB'} crop={self.crop}"
        return text if self.rounding == "uint8" else f"{text} float"

    @property
    def psnr_label(self) -> str:
        return self.label("PSNR")

    @property
    def ssim_label(self) -> str:
        return self.label("SSIM")

    def _round(self, sr: np.ndarray) -> np.ndarray:
        a = np.asarray(sr)
        if self.rounding == "uint8" and a.dtype != np.uint8:
            a = np.clip(np.floor(a.astype(np.float64) + 0.5), 0, 255).astype(np.uint8)
        return a

    def psnr(self, sr: np.ndarray, hr: np.ndarray) -> float:
        """:func:`psnr` under this convention (rounds a float SR first when ``rounding="uint8"``)."""
        return psnr(self._round(sr), hr, crop=self.crop, y_channel=self.y_channel)

    def ssim(self, sr: np.ndarray, hr: np.ndarray) -> float:
        """:func:`ssim` under this convention (rounds a float SR first when ``rounding="uint8"``)."""
        return ssim(self._round(sr), hr, crop=self.crop, y_channel=self.y_channel)

    @property
    def niqe_label(self) -> str:
        return self.label("NIQE")

    def niqe(self, sr: np.ndarray) -> float:
        """NIQE (no reference, lower is better; :mod:`jdsr_cli.ops.niqe`) of ``sr`` alone under this convention:
        rounded SR when ``rounding="uint8"``, ``crop`` pixels off every side. NIQE is defined on luminance only,
        so ``y_channel=False`` is refused."""
        from jdsr_cli.ops.niqe import niqe  # local: niqe imports this module (and torch)

        if not self.y_channel:
            raise ValueError("NIQE is defined on luminance: use a y_channel=True convention")
        return niqe(self._round(sr), crop=self.crop)
