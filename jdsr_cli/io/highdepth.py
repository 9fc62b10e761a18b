"""Sources with more than 8 bits per sample that Pillow would decode at 8 bits.

* 16-bit colour PNG (RGB, RGBA, gray + alpha) and 16-bit RGB(A) TIFF: OpenCV, after Pillow has
  decoded (and so checked) the whole file.
* 10/12-bit AVIF: OpenCV (its libavif returns the raw 10/12-bit codes), scaled to 16 bits by the
  depth read from the file's ``av1C`` box.
* 10/12-bit HEIC/HEIF: pillow-heif without its 8-bit conversion, scaled to 16 bits.
* A TIFF that Pillow cannot open (32-bit float RGB...): OpenCV, accepted only if every sample comes
  back at full precision (a 16-bit gray + alpha TIFF is refused: OpenCV drops its alpha).

Scaling is exact (code × 65535 / (2**depth − 1)), so a 10-bit white is 1.0, not 0.9990.
When the deep decoder fails, the caller reads the file at 8 bits and says so in a warning.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator

import cv2
import numpy as np
from PIL import Image as PILImage

from jdsr_cli.errors import ImageReadError
from jdsr_cli.io.modes import GRAY16_MODES, samples_to_float

__all__ = ["source_depth", "decode_high_depth", "decode_tiff_fallback", "avif_depth"]


def _png_ihdr(data: bytes) -> tuple[int, int] | None:
    """(bit depth, colour type) of a PNG, or None."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and len(data) >= 26:
        return data[24], data[25]
    return None


def _boxes(data: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """ISO-BMFF boxes in data[start:end]: (type, payload start, box end)."""
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        header = 8
        if size == 1 and pos + 16 <= end:
            size, header = struct.unpack(">Q", data[pos + 8 : pos + 16])[0], 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            return
        yield kind, pos + header, pos + size
        pos += size


def _child(data: bytes, kind: bytes, start: int, end: int) -> tuple[int, int] | None:
    return next(((s, e) for k, s, e in _boxes(data, start, end) if k == kind), None)


def avif_depth(data: bytes) -> int:
    """Bits per sample of an AVIF's coded image (8, 10 or 12), from meta/iprp/ipco/av1C; 8 if unknown."""
    meta = _child(data, b"meta", 0, len(data))
    iprp = meta and _child(data, b"iprp", meta[0] + 4, meta[1])  # meta is a full box
    ipco = iprp and _child(data, b"ipco", *iprp)
    if not ipco:
        return 8
    depth = 8
    for kind, start, end in _boxes(data, *ipco):
        if kind == b"av1C" and end - start >= 3:
            flags = data[start + 2]
            high, twelve = bool(flags & 0x40), bool(flags & 0x20)
            depth = max(depth, 12 if high and twelve else 10 if high else 8)
    return depth


def source_depth(data: bytes, pil: PILImage.Image) -> int:
    """Bits per sample of the source when Pillow would decode it at 8 bits; 8 otherwise."""
    if pil.mode in GRAY16_MODES:
        return 8  # Pillow keeps these itself
    if pil.format == "PNG":
        ihdr = _png_ihdr(data)
        return 16 if ihdr is not None and ihdr[0] == 16 and ihdr[1] in (2, 4, 6) else 8
    if pil.format == "TIFF":
        bits = getattr(pil, "tag_v2", {}).get(258, (8,))
        bits = bits if isinstance(bits, tuple) else (bits,)
        return 16 if max(bits, default=8) > 8 else 8
    if pil.format == "AVIF":
        return avif_depth(data)
    if pil.format == "HEIF":
        return int(pil.info.get("bit_depth") or 8)
    return 8


def _cv2_channels_to_rgb(arr: np.ndarray, gray_alpha: bool) -> np.ndarray | None:
    """OpenCV's BGR(A) / gray layout to ours; None for an unexpected channel count."""
    if arr.ndim == 2:
        return arr[:, :, None]
    channels = arr.shape[2]
    if channels == 3:
        return arr[:, :, ::-1]
    if channels == 4:
        return arr[:, :, [0, 3]] if gray_alpha else arr[:, :, [2, 1, 0, 3]]
    return arr if channels in (1, 2) else None


def _decode_cv2(data: bytes, depth: int, *, gray_alpha: bool) -> np.ndarray | None:
    """Decode with OpenCV keeping every bit: float32 H×W×C in RGB order, or None on failure."""
    arr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None or arr.dtype != np.uint16:
        return None
    arr = _cv2_channels_to_rgb(arr, gray_alpha)
    return None if arr is None else np.divide(arr, (1 << depth) - 1, dtype=np.float32)


def _decode_heif(data: bytes) -> np.ndarray | None:
    """The primary image of a 10/12-bit HEIF at full depth (float32, upright), or None on failure."""
    try:
        import pillow_heif

        heif = pillow_heif.open_heif(io.BytesIO(data), convert_hdr_to_8bit=False, hdr_to_16bit=False)
        depth = int(heif.info.get("bit_depth") or 8)
        arr = np.asarray(heif)
    except Exception:  # noqa: BLE001 - the caller falls back to 8 bits and says so
        return None
    if arr.dtype != np.uint16 or depth <= 8:
        return None
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return np.divide(arr, (1 << depth) - 1, dtype=np.float32)


def decode_high_depth(data: bytes, pil: PILImage.Image, depth: int) -> np.ndarray | None:
    """The pixels of a deep source (see :func:`source_depth`) as float32, or None if it fails."""
    if pil.format == "HEIF":
        return _decode_heif(data)
    ihdr = _png_ihdr(data)
    gray_alpha = ihdr[1] == 4 if ihdr is not None else pil.mode in ("LA", "La")
    return _decode_cv2(data, depth, gray_alpha=gray_alpha)


def decode_tiff_fallback(data: bytes, name: str, tags: dict[int, object]) -> tuple[np.ndarray, int]:
    """A TIFF that Pillow cannot open: (float32 pixels, depth) if OpenCV reads every sample in full."""
    samples = int(tags.get(277, 1))
    bits = tags.get(258, (1,))
    bits = max(bits) if isinstance(bits, tuple) else int(bits)
    arr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    channels = 0 if arr is None else (1 if arr.ndim == 2 else arr.shape[2])
    if arr is None or channels != samples or arr.dtype.itemsize * 8 < bits:
        raise ImageReadError(
            f"{name}: unsupported TIFF layout ({samples} samples of {bits} bits, "
            f"compression {tags.get(259, 1)}); convert it to PNG or 8/16-bit RGB(A) TIFF"
        )
    arr = _cv2_channels_to_rgb(arr, gray_alpha=False)
    if arr is None:
        raise ImageReadError(f"{name}: unsupported TIFF layout ({samples} samples)")
    return samples_to_float(arr, name)
