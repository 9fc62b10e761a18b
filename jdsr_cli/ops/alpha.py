"""Alpha-channel helpers: colour bleeding into transparent pixels, uniform-alpha detection.

Fully transparent pixels often hold black (or arbitrary) colour. Any filter that mixes neighbours
(bilinear, bicubic, a super-resolution network) then pulls that colour into the visible edge: a dark
fringe. :func:`fill_transparent` replaces the colour of fully transparent pixels with the colour of
nearby visible pixels before such a filter runs; the alpha channel itself is untouched, so the result
looks the same once composited.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["fill_transparent", "is_constant"]

#: Rings of transparent pixels next to visible ones that get an alpha-weighted average of their
#: neighbours (smooth colour across the edge); farther pixels take the colour of the nearest filled one.
SMOOTH_RINGS = 2


def _box3(arr: np.ndarray) -> np.ndarray:
    """Sum over each 3×3 neighbourhood, zero outside the image; keeps the input's shape."""
    out = cv2.boxFilter(arr, -1, (3, 3), normalize=False, borderType=cv2.BORDER_CONSTANT)
    return out.reshape(arr.shape)


def fill_transparent(rgb: np.ndarray, alpha: np.ndarray, *, threshold: float = 0.0) -> np.ndarray:
    """Return ``rgb`` with the colour of fully transparent pixels pulled in from visible neighbours.

    ``rgb`` is H×W×C (or H×W) float32, ``alpha`` H×W in [0, 1]. A pixel is fully transparent when its
    alpha is at most ``threshold``; every other pixel keeps its colour exactly. The first
    :data:`SMOOTH_RINGS` rings of transparent pixels around visible ones get the alpha-weighted mean
    of their filled 3×3 neighbours (barely visible, noisy edge pixels weigh little); every pixel
    beyond gets the colour of the nearest filled pixel (an OpenCV distance transform), so the whole
    image is filled in time linear in its size. If no pixel or every pixel is transparent, ``rgb`` is
    returned as is; otherwise a new float32 array (the input is not modified).
    """
    rgb = np.asarray(rgb)
    alpha = np.asarray(alpha)
    if alpha.ndim == 3 and alpha.shape[2] == 1:
        alpha = alpha[:, :, 0]
    if alpha.shape != rgb.shape[:2]:
        raise ValueError(f"alpha {alpha.shape} does not match the colour image {rgb.shape[:2]}")
    visible = alpha > threshold
    if visible.all() or not visible.any():
        return rgb

    squeeze = rgb.ndim == 2
    out = np.array(rgb[:, :, None] if squeeze else rgb, dtype=np.float32, copy=True)
    filled = visible.copy()
    weight = np.where(visible, alpha, 0).astype(np.float32)

    for _ in range(SMOOTH_RINGS):
        total = _box3(weight)
        ring = ~filled & (total > 0)
        if not ring.any():
            break
        weighted = _box3(out * weight[:, :, None])
        out[ring] = weighted[ring] / total[ring][:, None]
        weight[ring] = 1.0
        filled |= ring

    if not filled.all():
        # Label every filled pixel on its own; each unfilled pixel gets the label of the nearest one.
        sources = np.where(filled, 0, 255).astype(np.uint8)
        _, labels = cv2.distanceTransformWithLabels(
            sources, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL
        )
        lookup = np.zeros((int(labels.max()) + 1, out.shape[2]), dtype=np.float32)
        lookup[labels[filled]] = out[filled]
        holes = ~filled
        out[holes] = lookup[labels[holes]]

    return out[:, :, 0] if squeeze else out


def is_constant(alpha: np.ndarray, *, tolerance: float = 0.0) -> float | None:
    """The value of ``alpha`` if every sample is within ``tolerance`` of it (e.g. 1.0 when fully
    opaque), else None. An empty array gives None."""
    alpha = np.asarray(alpha)
    if alpha.size == 0:
        return None
    low = float(alpha.min())
    high = float(alpha.max())
    if high - low <= tolerance:
        return high if tolerance == 0 else float(alpha.mean())
    return None
