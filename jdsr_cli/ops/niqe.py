"""NIQE, the no-reference "naturalness" score of Mittal, Soundararajan and Bovik (IEEE SPL 2013); lower is better.

Written from the paper and the behaviour of the authors' MATLAB release (``computequality.m`` /
``computefeature.m`` / ``estimateaggdparam.m``), step by step:

1. Luminance: BT.601 Y (MATLAB ``rgb2ycbcr``) of the 8-bit RGB image, rounded to integers as MATLAB's uint8
   ``rgb2ycbcr`` returns it (gray images go through RGB replication, the project's rule of
   :mod:`jdsr_cli.ops.color`). ``crop`` pixels come off every side first (0 in the reference; ``jdsr eval``
   uses crop = scale, as for PSNR/SSIM). The Y image is cut top-left to whole 96×96 blocks.
2. For each of two scales (the second is MATLAB ``imresize(Y, 0.5)``: bicubic, antialiased, float, no rounding,
   border mirrored as current MATLAB does; :func:`imresize_half`): MSCN coefficients (Y − μ) / (σ + 1), μ and σ
   from a 7×7 Gaussian window (σ = 7/6, normalised), border replicated (``imfilter(..., 'replicate')``),
   σ = sqrt(|E[Y²] − μ²|).
3. Per non-overlapping block (96×96 at scale 1, 48×48 at scale 2): 18 features. An asymmetric generalised
   Gaussian (AGGD, fitted by moment matching against the table γ = 0.2:0.001:10) of the MSCN coefficients
   gives (α, (βl + βr)/2); AGGD fits of the products with the four neighbours (horizontal, vertical and
   both diagonals; circular shifts inside the block, as ``circshift``) give (α, η, βl, βr) each, with
   η = (βr − βl)·Γ(2/α)/Γ(1/α). Both scales side by side: 36 features per block.
4. The image's model is the mean (NaN-ignoring, per feature) and covariance (over blocks free of NaN, as
   ``nanmean`` / ``nancov``) of its blocks' features; NIQE = sqrt((ν₁ − ν₂)ᵀ pinv((Σ₁ + Σ₂)/2) (ν₁ − ν₂)),
   with (ν₁, Σ₁) the pristine model.

The pristine model (36 means, 36×36 covariance) is the authors' published ``modelparameters.mat``; the numbers
in ``niqe_params.npz`` are taken unchanged from ``niqe_pris_params.npz`` of the PyPI sdist
``basicsr-1.4.2.tar.gz`` (sha256 of that file 2a7c182a…, a conversion of the same .mat). Only the numbers
are used. Checked in ``tests/test_niqe.py`` against MATLAB's 5.72957338 for Set14 ``baboon`` (we get 5.7295739).

numpy + torch only (torch for the MATLAB resize); no scipy.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view

from jdsr_cli.ops.color import rgb_to_y_np
from jdsr_cli.ops.metrics import gaussian_window_1d
from jdsr_cli.ops.resize import imresize

__all__ = ["NIQE_BLOCK", "imresize_half", "niqe", "niqe_features", "niqe_luma", "niqe_y"]

NIQE_BLOCK = 96
NIQE_WIN = 7
NIQE_SIGMA = 7.0 / 6.0
_PARAMS = Path(__file__).with_name("niqe_params.npz")
# MATLAB's circshift(structdis, [dr dc]) for the four neighbour products, in computefeature.m's order.
_SHIFTS = ((0, 1), (1, 0), (1, 1), (-1, 1))


@lru_cache(maxsize=1)
def _pristine() -> tuple[np.ndarray, np.ndarray]:
    with np.load(_PARAMS, allow_pickle=False) as data:
        return data["mu_prisparam"].astype(np.float64), data["cov_prisparam"].astype(np.float64)


@lru_cache(maxsize=1)
def _aggd_table() -> tuple[np.ndarray, np.ndarray]:
    """(γ, r(γ) = Γ(2/γ)² / (Γ(1/γ)·Γ(3/γ))) for γ = 0.2, 0.201, …, 10."""
    gam = 0.2 + 0.001 * np.arange(9801, dtype=np.float64)
    r = np.array([math.gamma(2 / g) ** 2 / (math.gamma(1 / g) * math.gamma(3 / g)) for g in gam])
    return gam, r


def _aggd_fit(v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row-wise AGGD moment-matching fit of ``v`` (n × m): (α, βl, βr), each of length n.

    Rows with no negative (positive) value have βl (βr) = NaN, as MATLAB's mean of an empty vector; a row
    whose ratio is NaN or infinite gets α = 0.2, the first table entry (MATLAB ``min`` returns index 1).
    """
    gam, r_gam = _aggd_table()
    sq = v * v
    neg, pos = v < 0, v > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        left = np.sqrt((sq * neg).sum(axis=1) / neg.sum(axis=1))
        right = np.sqrt((sq * pos).sum(axis=1) / pos.sum(axis=1))
        ghat = left / right
        rhat = np.abs(v).mean(axis=1) ** 2 / sq.mean(axis=1)
        rnorm = rhat * (ghat**3 + 1) * (ghat + 1) / (ghat**2 + 1) ** 2
        alpha = gam[np.argmin((r_gam[None, :] - rnorm[:, None]) ** 2, axis=1)]
    g1 = np.array([math.gamma(1 / a) for a in alpha])
    g3 = np.array([math.gamma(3 / a) for a in alpha])
    scale = np.sqrt(g1 / g3)
    return alpha, left * scale, right * scale


def _filter_replicate(img: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Same-size correlation with g⊗g, border replicated (MATLAB ``imfilter(img, g*g', 'replicate')``)."""
    r = g.size // 2
    p = np.pad(img, r, mode="edge")
    t = sliding_window_view(p, g.size, axis=0) @ g
    return sliding_window_view(t, g.size, axis=1) @ g


def _mscn(img: np.ndarray) -> np.ndarray:
    g = gaussian_window_1d(NIQE_WIN, NIQE_SIGMA)
    mu = _filter_replicate(img, g)
    sigma = np.sqrt(np.abs(_filter_replicate(img * img, g) - mu * mu))
    return (img - mu) / (sigma + 1.0)


def _block_features(structdis: np.ndarray, block: int) -> np.ndarray:
    """18 features of every block×block block of an MSCN image whose sides are multiples of ``block``."""
    h, w = structdis.shape
    blocks = structdis.reshape(h // block, block, w // block, block).transpose(0, 2, 1, 3).reshape(-1, block, block)
    n = blocks.shape[0]
    alpha, bl, br = _aggd_fit(blocks.reshape(n, -1))
    feats = [alpha, (bl + br) / 2]
    for shift in _SHIFTS:
        pair = (blocks * np.roll(blocks, shift, axis=(1, 2))).reshape(n, -1)
        alpha, bl, br = _aggd_fit(pair)
        ratio = np.array([math.gamma(2 / a) / math.gamma(1 / a) for a in alpha])
        feats += [alpha, (br - bl) * ratio, bl, br]
    return np.stack(feats, axis=1)


def niqe_features(y: np.ndarray) -> np.ndarray:
    """The n_blocks × 36 feature matrix of a luminance image (H×W, 0..255, at least 96×96)."""
    img = np.asarray(y, dtype=np.float64)
    if img.ndim != 2:
        raise ValueError(f"niqe_features needs an H×W luminance image, got shape {img.shape}")
    h, w = img.shape
    if h < NIQE_BLOCK or w < NIQE_BLOCK:
        raise ValueError(f"NIQE needs at least {NIQE_BLOCK}×{NIQE_BLOCK} pixels, got {h}×{w}")
    img = img[: h - h % NIQE_BLOCK, : w - w % NIQE_BLOCK]
    per_scale = []
    for level in (1, 2):
        per_scale.append(_block_features(_mscn(img), NIQE_BLOCK // level))
        if level == 1:
            img = imresize_half(img)
    return np.concatenate(per_scale, axis=1)


def imresize_half(img: np.ndarray) -> np.ndarray:
    """MATLAB ``imresize(img, 0.5)`` of a float64 H×W array (bicubic, antialiased, unrounded), border mirrored.

    MATLAB's ``imresize`` (the R2021a of the reference value) extends the border symmetrically, while
    :func:`jdsr_cli.ops.resize.imresize` replicates the edge pixel (the older MATLAB that made the benchmark LR
    files). Padding by 8 mirrored pixels (even, so the ×0.5 sampling grid shifts by exactly 4 output pixels and
    covers the 8-tap antialiased kernel) and dropping 4 output pixels per side gives MATLAB's mirrored result.
    With edge replication Set14 ``baboon`` scores 5.7191 instead of MATLAB's 5.7296.
    """
    pad = 8
    padded = np.pad(np.asarray(img, dtype=np.float64), pad, mode="symmetric")
    out = imresize(torch.from_numpy(padded), scale=0.5).numpy()
    return out[pad // 2 : -(pad // 2), pad // 2 : -(pad // 2)]


def _nan_model(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """MATLAB ``nanmean`` (per column) and ``nancov`` (rows with any NaN dropped; one row gives zeros)."""
    finite = ~np.isnan(feats)
    with np.errstate(invalid="ignore"):
        mean = np.where(finite, feats, 0.0).sum(axis=0) / finite.sum(axis=0)
    rows = feats[finite.all(axis=1)]
    if rows.shape[0] == 0:
        return mean, np.full((feats.shape[1],) * 2, np.nan)
    if rows.shape[0] == 1:
        return mean, np.zeros((feats.shape[1],) * 2)
    return mean, np.cov(rows, rowvar=False)


def niqe_y(y: np.ndarray) -> float:
    """NIQE of a luminance image (H×W in 0..255, used as given: no rounding, no crop)."""
    mu_p, cov_p = _pristine()
    mu_d, cov_d = _nan_model(niqe_features(y))
    d = mu_p - mu_d
    return float(math.sqrt(float(d @ np.linalg.pinv((cov_p + cov_d) / 2) @ d)))


def niqe_luma(img: np.ndarray, *, crop: int = 0) -> np.ndarray:
    """The Y image NIQE scores: BT.601 Y of an H×W×3 RGB / H×W(×1) gray array in 0..255, rounded half away
    from zero (MATLAB's uint8 ``rgb2ycbcr``), ``crop`` pixels removed on every side."""
    a = np.asarray(img)
    if a.ndim == 3 and a.shape[2] == 4:
        raise ValueError("NIQE needs an RGB or gray image, not RGBA")
    if crop < 0 or int(crop) != crop:
        raise ValueError(f"crop must be a non-negative integer, got {crop!r}")
    y = np.floor(rgb_to_y_np(a) + 0.5)
    if crop:
        y = y[crop:-crop, crop:-crop]
    return y


def niqe(img: np.ndarray, *, crop: int = 0) -> float:
    """NIQE (lower is better) of an 8-bit-scale RGB or gray image, under the convention of the module
    docstring: rounded BT.601 Y, ``crop`` pixels off every side, 96×96 blocks, two scales."""
    return niqe_y(niqe_luma(img, crop=crop))
