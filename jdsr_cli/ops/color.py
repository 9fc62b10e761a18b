"""ITU-R BT.601 studio-range YCbCr, as MATLAB's ``rgb2ycbcr`` / ``ycbcr2rgb``.

Why this one: SR papers score the Y channel of exactly this transform (Y in 16..235 for 8-bit data), so
both the engine (Y-only models) and the metrics must use it to stay comparable with published numbers.

Grayscale rule (used everywhere in jdsr): a single-channel image L is replicated to RGB before the
BT.601 formula. Since 65.481 + 128.553 + 24.966 = 219, that gives Y = 16 + 219/255 · L (8-bit scale)
and Cb = Cr = 128: the "BT.601 route" of ``../shared/data/README.md``, which keeps every image of a
set (Set14 ``bridge`` included) on one formula.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = [
    "YCBCR_MATRIX",
    "YCBCR_OFFSET",
    "rgb_to_y",
    "rgb_to_y_np",
    "rgb_to_ycbcr",
    "rgb_to_ycbcr_np",
    "ycbcr_to_rgb",
    "ycbcr_to_rgb_np",
]

#: Rows Y, Cb, Cr; columns R, G, B; for RGB in [0, 1] giving YCbCr in 0..255 units.
YCBCR_MATRIX = np.array(
    [
        [65.481, 128.553, 24.966],
        [-37.797, -74.203, 112.0],
        [112.0, -93.786, -18.214],
    ],
    dtype=np.float64,
)
#: Offsets in 0..255 units.
YCBCR_OFFSET = np.array([16.0, 128.0, 128.0], dtype=np.float64)

# Inverse in [0,1] units: rgb = INV @ (ycbcr - offset/255) with ycbcr in [0, 1].
_FWD01 = YCBCR_MATRIX / 255.0
_INV01 = np.linalg.inv(_FWD01)
_OFF01 = YCBCR_OFFSET / 255.0


#: BT.601 luma weights: how an RGB result returns to gray for a gray input (H×W×C float images).
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def gray_as_rgb(pixels: np.ndarray) -> np.ndarray:
    """H×W×1 replicated to H×W×3 (RGB networks see gray this way); H×W×3 unchanged."""
    return np.repeat(pixels, 3, axis=2) if pixels.shape[2] == 1 else pixels


def rgb_as_gray(rgb: np.ndarray) -> np.ndarray:
    """H×W×3 float → H×W×1 BT.601 luma."""
    return (rgb @ LUMA_WEIGHTS)[:, :, None].astype(np.float32)


def _as_rgb(x: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) as is; (..., 1, H, W) replicated to three channels (the grayscale rule)."""
    if x.dim() < 3 or x.shape[-3] not in (1, 3):
        raise ValueError(f"expected (..., 3, H, W) or (..., 1, H, W), got shape {tuple(x.shape)}")
    if x.shape[-3] == 1:
        x = x.expand(*x.shape[:-3], 3, *x.shape[-2:])
    return x


def _work(x: torch.Tensor) -> tuple[torch.Tensor, torch.dtype]:
    """Compute dtype: float32/float64 as is; half types and integers in float32 (returned as float32
    for integers, cast back for half types)."""
    if x.dtype in (torch.float32, torch.float64):
        return x, x.dtype
    if x.is_floating_point():
        return x.to(torch.float32), x.dtype
    return x.to(torch.float32), torch.float32


def _affine(
    x: torch.Tensor, mat: np.ndarray, pre: np.ndarray | None, post: np.ndarray | None
) -> torch.Tensor:
    """Per-pixel 3×3 map over dim -3: out = mat @ (x - pre) + post, written as explicit sums."""
    x, out_dtype = _work(x)
    chans = [x[..., i, :, :] - float(pre[i]) if pre is not None else x[..., i, :, :] for i in range(3)]
    rows = []
    for r in range(3):
        v = chans[0] * float(mat[r, 0]) + chans[1] * float(mat[r, 1]) + chans[2] * float(mat[r, 2])
        if post is not None:
            v = v + float(post[r])
        rows.append(v)
    return torch.stack(rows, dim=-3).to(out_dtype)


def rgb_to_ycbcr(x: torch.Tensor) -> torch.Tensor:
    """RGB (..., 3, H, W) in [0, 1] -> BT.601 studio YCbCr in [0, 1] units (Y in 16/255..235/255).

    A 1-channel input follows the grayscale rule (replicated to RGB first).
    """
    return _affine(_as_rgb(x), _FWD01, None, _OFF01)


def ycbcr_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_ycbcr` (exact matrix inverse, no clamping: callers clamp)."""
    if x.dim() < 3 or x.shape[-3] != 3:
        raise ValueError(f"expected (..., 3, H, W) YCbCr, got shape {tuple(x.shape)}")
    return _affine(x, _INV01, _OFF01, None)


def rgb_to_y(x: torch.Tensor) -> torch.Tensor:
    """Y of BT.601 for (..., 3|1, H, W) in [0, 1], keeping a channel dim: (..., 1, H, W) in [0, 1]."""
    x = _as_rgb(x)
    x, out_dtype = _work(x)
    m = _FWD01[0]
    y = x[..., 0:1, :, :] * float(m[0]) + x[..., 1:2, :, :] * float(m[1]) + x[..., 2:3, :, :] * float(m[2])
    return (y + float(_OFF01[0])).to(out_dtype)


# ---------------------------------------------------------------------------------------------------
# numpy variants (H×W×C / H×W arrays in 0..255), used by the metrics.
# ---------------------------------------------------------------------------------------------------


def _np_rgb(img: np.ndarray) -> np.ndarray:
    """float64 H×W×3 in 0..255 from H×W, H×W×1 (grayscale rule) or H×W×3 arrays."""
    a = np.asarray(img, dtype=np.float64)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[2] not in (1, 3):
        raise ValueError(f"expected an H×W, H×W×1 or H×W×3 image, got shape {np.shape(img)}")
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    return a


def rgb_to_y_np(img: np.ndarray) -> np.ndarray:
    """Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255 for 8-bit-scale RGB; float64 H×W in 0..255.

    Accepts uint8 or float arrays in 0..255; grayscale (H×W or H×W×1) gives 16 + 219/255 · L.
    """
    a = _np_rgb(img)
    m = YCBCR_MATRIX[0]
    return 16.0 + (m[0] * a[..., 0] + m[1] * a[..., 1] + m[2] * a[..., 2]) / 255.0


def rgb_to_ycbcr_np(img: np.ndarray) -> np.ndarray:
    """Full YCbCr (float64 H×W×3, 0..255 scale) of an 8-bit-scale RGB or grayscale array."""
    a = _np_rgb(img)
    return a @ (YCBCR_MATRIX.T / 255.0) + YCBCR_OFFSET


def ycbcr_to_rgb_np(img: np.ndarray) -> np.ndarray:
    """Inverse of :func:`rgb_to_ycbcr_np` (float64, 0..255 scale, unclamped)."""
    a = np.asarray(img, dtype=np.float64)
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"expected an H×W×3 YCbCr array, got shape {np.shape(img)}")
    return (a - YCBCR_OFFSET) @ (np.linalg.inv(YCBCR_MATRIX / 255.0).T)
