"""Our TIFF writer, and the header parser the OpenCV fallback reader needs.

The writer produces a little-endian baseline TIFF: contiguous samples, strips of about 256 KiB,
Adobe deflate compression with horizontal-differencing predictor, unassociated alpha in
``ExtraSamples``, the ICC profile in tag 34675 and the EXIF data as IFD0 descriptive tags plus the
Exif and GPS sub-IFDs. Pillow, OpenCV (libtiff) and tifffile read it.

16-bit gray + alpha is written as 16-bit RGBA by :func:`jdsr_cli.io.writer.write_image` (the gray
channel repeated): Pillow cannot open a 16-bit two-sample TIFF and OpenCV reads one as 8-bit gray
without its alpha, so a conforming file would be unreadable by the most common tools.
"""

from __future__ import annotations

import io
import struct
import zlib
from typing import BinaryIO

import numpy as np
from PIL import Image as PILImage
from PIL import TiffImagePlugin

from jdsr_cli.io.metadata import EXIF_IFD0_TAGS, EXIF_SUB_IFDS

__all__ = ["encode_tiff", "tiff_header_info"]


_TIFF_STRIP_BYTES = 256 << 10


def _tiff_predict(strip: np.ndarray) -> np.ndarray:
    """Horizontal differencing (Predictor 2) per sample, modulo the sample range."""
    out = strip.copy()
    out[:, 1:] -= strip[:, :-1]
    return out


def encode_tiff(handle: BinaryIO, q: np.ndarray, *, icc: bytes | None, exif: bytes | None) -> None:
    """Write ``q`` (uint8 or uint16, H×W×C with C = 1..4) as a deflate-compressed baseline TIFF."""
    height, width, channels = q.shape
    if q.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"TIFF samples must be uint8 or uint16, got {q.dtype}")
    bits = q.dtype.itemsize * 8
    arr = np.ascontiguousarray(q.astype(q.dtype.newbyteorder("<"), copy=False))
    row_bytes = width * channels * q.dtype.itemsize
    rows_per_strip = max(1, min(height, _TIFF_STRIP_BYTES // max(1, row_bytes)))

    strips: list[bytes] = []
    for start in range(0, height, rows_per_strip):
        strip = _tiff_predict(arr[start : start + rows_per_strip])
        strips.append(zlib.compress(strip.tobytes(), 6))
    # Strips follow the IFD; Pillow's IFD serialiser adds the IFD's end to the relative offsets.
    offsets: list[int] = []
    position = 0
    for strip_data in strips:
        offsets.append(position)
        position += len(strip_data) + (len(strip_data) & 1)
    if position > 2**32 - 1 - (16 << 20):
        raise ValueError("the compressed image exceeds the 4 GiB limit of a TIFF file")

    ifd = TiffImagePlugin.ImageFileDirectory_v2(ifh=b"II\x2a\x00\x08\x00\x00\x00")
    short, long_, rational, undefined = 3, 4, 5, 7

    def put(tag: int, typ: int, value: object) -> None:
        ifd.tagtype[tag] = typ
        ifd[tag] = value

    put(256, long_, width)
    put(257, long_, height)
    put(258, short, (bits,) * channels)
    put(259, short, 8)  # Adobe deflate
    put(262, short, 2 if channels >= 3 else 1)  # RGB or BlackIsZero
    put(273, long_, tuple(offsets))
    put(277, short, channels)
    put(278, long_, rows_per_strip)
    put(279, long_, tuple(len(s) for s in strips))
    put(282, rational, TiffImagePlugin.IFDRational(72))
    put(283, rational, TiffImagePlugin.IFDRational(72))
    put(284, short, 1)  # contiguous samples
    put(296, short, 2)  # inch
    put(317, short, 2)  # horizontal differencing
    if channels in (2, 4):
        put(338, short, 2)  # unassociated alpha
    put(339, short, (1,) * channels)  # unsigned integer samples
    if icc:
        put(34675, undefined, icc)
    if exif:
        parsed = PILImage.Exif()
        parsed.load(exif)
        for tag in sorted(EXIF_IFD0_TAGS):
            if tag in parsed:
                ifd[tag] = parsed[tag]
        put(274, short, 1)
        for tag in EXIF_SUB_IFDS:
            sub = parsed.get_ifd(tag)
            if sub:
                put(tag, long_, dict(sub))

    handle.write(struct.pack("<2sHI", b"II", 42, 8))
    handle.write(ifd.tobytes(8))
    for strip_data in strips:
        handle.write(strip_data)
        if len(strip_data) & 1:
            handle.write(b"\x00")


def tiff_header_info(data: bytes) -> dict[int, object] | None:
    """The first IFD of a TIFF byte string as {tag: value}, or None when it cannot be parsed."""
    try:
        ifd = TiffImagePlugin.ImageFileDirectory_v2(ifh=data[:8])
        stream = io.BytesIO(data)
        stream.seek(ifd.next)
        ifd.load(stream)
        return dict(ifd)
    except Exception:  # noqa: BLE001 - any failure means "not a TIFF we can describe"
        return None
