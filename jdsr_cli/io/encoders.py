"""Pillow-based encoders for 8-bit samples: PNG, JPEG, WebP, BMP, GIF, HEIC (pillow-heif) and AVIF.

Quality defaults are chosen for upscaled photos, where artefacts cost more than bytes: JPEG 95
(4:4:4 chroma at 90 and above), WebP, HEIC and AVIF 90. GIF frames are reduced to a palette by
:func:`gif_palette_image` (exact when a frame has at most 256 colours).
"""

from __future__ import annotations

from typing import BinaryIO

import numpy as np
from PIL import Image as PILImage

from jdsr_cli.io.plugins import register_plugins
from jdsr_cli.io.png_encoder import PNG_COMPRESS_LEVEL

__all__ = ["encode_pillow", "to_pil", "gif_palette_image", "DEFAULT_QUALITY"]

DEFAULT_QUALITY = {"jpeg": 95, "webp": 90, "heic": 90, "avif": 90}
_PILLOW_NAME = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP", "bmp": "BMP", "gif": "GIF", "heic": "HEIF",
                "avif": "AVIF"}
_WITH_METADATA = frozenset({"png", "jpeg", "webp", "heic", "avif"})
_GIF_ALPHA_CUT = 128  # alpha at or above: opaque in a GIF


def to_pil(q: np.ndarray) -> PILImage.Image:
    """uint8 H×W×C (C = 1..4) to a Pillow image in mode L, LA, RGB or RGBA."""
    if q.dtype != np.uint8:
        raise ValueError(f"Pillow encoders take 8-bit samples, got {q.dtype}")
    arr = np.ascontiguousarray(q[..., 0] if q.shape[2] == 1 else q)
    return PILImage.fromarray(arr)


def _p_image(indices: np.ndarray) -> PILImage.Image:
    """A mode P image from H×W palette indices (the palette is set by the caller)."""
    return PILImage.frombytes("P", (indices.shape[1], indices.shape[0]), np.ascontiguousarray(indices).tobytes())


def _exact_palette(rgb: np.ndarray, opaque: np.ndarray, colors: int) -> PILImage.Image | None:
    """A P image holding ``rgb`` exactly when its opaque pixels use at most ``colors`` colours."""
    packed = (rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8) | rgb[..., 2]
    values, index = np.unique(packed[opaque], return_inverse=True)
    if len(values) > colors:
        return None
    indices = np.zeros(packed.shape, dtype=np.uint8)
    indices[opaque] = index.astype(np.uint8)
    palette = np.stack([(values >> 16) & 255, (values >> 8) & 255, values & 255], axis=1).astype(np.uint8)
    image = _p_image(indices)
    image.putpalette(palette.tobytes())
    return image


def gif_palette_image(q: np.ndarray) -> PILImage.Image:
    """uint8 H×W×C as a GIF-ready Pillow image in mode P (index 255 transparent if any pixel is)."""
    rgb = np.repeat(q[..., :1], 3, axis=2) if q.shape[2] in (1, 2) else q[..., :3]
    alpha = q[..., -1] if q.shape[2] in (2, 4) else None
    opaque = np.ones(q.shape[:2], dtype=bool) if alpha is None else alpha >= _GIF_ALPHA_CUT
    colors = 256 if opaque.all() else 255
    image = _exact_palette(rgb, opaque, colors)
    if image is None:  # median cut; Pillow does not dither here, so static areas do not shimmer
        image = PILImage.fromarray(np.ascontiguousarray(rgb)).quantize(colors=colors)
    if colors == 255:
        indices = np.asarray(image).copy()
        indices[~opaque] = 255
        palette = image.getpalette()[: 255 * 3]
        image = _p_image(indices)
        image.putpalette(palette + [0, 0, 0] * (256 - len(palette) // 3))
        image.info["transparency"] = 255
    return image


def _quality_params(fmt: str, quality: int | None, lossless: bool) -> dict[str, object]:
    q_value = DEFAULT_QUALITY.get(fmt) if quality is None else quality
    if fmt == "jpeg":
        return {"quality": q_value, **({"subsampling": 0} if q_value >= 90 else {})}
    if fmt == "webp" and lossless:
        # exact: keep the colour under fully transparent pixels, so the round trip is exact;
        # quality is the compression effort in lossless mode.
        return {"lossless": True, "exact": True, **({"quality": quality} if quality is not None else {})}
    if fmt in ("webp", "heic", "avif"):
        return {"quality": q_value}
    if fmt == "png":
        return {"compress_level": PNG_COMPRESS_LEVEL}
    return {}


def encode_pillow(
    handle: BinaryIO,
    q: np.ndarray,
    fmt: str,
    *,
    icc: bytes | None,
    exif: bytes | None,
    quality: int | None,
    lossless: bool,
) -> None:
    """Write 8-bit samples as ``fmt`` (canonical) with Pillow or a registered plugin."""
    if fmt not in _PILLOW_NAME:  # pragma: no cover - dispatch is exhaustive
        raise ValueError(f"no Pillow encoder for {fmt}")
    if fmt == "heic":
        register_plugins()
    image = gif_palette_image(q) if fmt == "gif" else to_pil(q)
    params = _quality_params(fmt, quality, lossless)
    if fmt in _WITH_METADATA:
        params.update({k: v for k, v in (("icc_profile", icc), ("exif", exif)) if v})
    image.save(handle, format=_PILLOW_NAME[fmt], **params)
