"""Output formats: names, capabilities and the encoders that write quantised pixel arrays.

Capabilities (what a file of that format can hold, as written by :func:`jdsr_cli.io.image.write_image`):

======  ======  =====  ===========  ==============  =========================================
format  16-bit  alpha  gray stays   metadata        encoder
======  ======  =====  ===========  ==============  =========================================
png     yes     yes    yes (L, LA)  ICC + EXIF      Pillow (8-bit), our own encoder (16-bit)
tiff    yes     yes    yes (*)      ICC + EXIF      our own writer (deflate + predictor)
jpeg    no      no     yes (L)      ICC + EXIF      Pillow
webp    no      yes    no -> RGB    ICC + EXIF      Pillow
bmp     no      no     yes (L)      none            Pillow
======  ======  =====  ===========  ==============  =========================================

(*) 16-bit gray + alpha is written to TIFF as 16-bit RGBA (the gray channel repeated): Pillow cannot
open a 16-bit two-sample TIFF and OpenCV reads one as 8-bit gray without its alpha, so a conforming
file would be unreadable by the most common tools. 8-bit gray + alpha TIFF stays two samples.

The 16-bit PNG encoder is ours because neither Pillow (no 16-bit RGB/RGBA/LA modes) nor OpenCV
(no two-channel PNG, no ICC/EXIF chunks) can write every layout with metadata. It produces a plain,
non-interlaced PNG with per-row adaptive filtering (minimum sum of absolute differences, as libpng),
an ``iCCP`` and an ``eXIf`` chunk before the image data.

The TIFF writer produces a little-endian baseline TIFF: contiguous samples, strips of about 256 KiB,
Adobe deflate compression with horizontal-differencing predictor, unassociated alpha in
``ExtraSamples``, the ICC profile in tag 34675 and the EXIF data as IFD0 descriptive tags plus the
Exif and GPS sub-IFDs. Pillow, OpenCV (libtiff) and tifffile read it.
"""

from __future__ import annotations

import io
import struct
import zlib
from typing import BinaryIO

import numpy as np
from PIL import Image as PILImage
from PIL import TiffImagePlugin

__all__ = [
    "OUTPUT_FORMATS",
    "normalize_format",
    "format_from_path",
    "format_supports_16bit",
    "format_supports_alpha",
    "format_supports_gray",
    "format_supports_lossless",
    "format_supports_metadata",
    "MAX_DIMENSION",
]

#: Canonical names of the formats :func:`jdsr_cli.io.image.write_image` can write.
OUTPUT_FORMATS: tuple[str, ...] = ("png", "jpeg", "webp", "tiff", "bmp")

_ALIASES = {
    "png": "png",
    "jpg": "jpeg",
    "jpeg": "jpeg",
    "jpe": "jpeg",
    "jfif": "jpeg",
    "webp": "webp",
    "tif": "tiff",
    "tiff": "tiff",
    "bmp": "bmp",
}

#: Largest width or height each format can store.
MAX_DIMENSION = {"png": 2**31 - 1, "jpeg": 65_535, "webp": 16_383, "tiff": 2**32 - 1, "bmp": 2**31 - 1}

_SUPPORTS_16BIT = frozenset({"png", "tiff"})
_SUPPORTS_ALPHA = frozenset({"png", "webp", "tiff"})
_SUPPORTS_GRAY = frozenset({"png", "jpeg", "tiff", "bmp"})
_SUPPORTS_LOSSLESS = frozenset({"png", "webp", "tiff", "bmp"})
_SUPPORTS_METADATA = frozenset({"png", "jpeg", "webp", "tiff"})


def normalize_format(name: str) -> str | None:
    """Canonical output format for ``name`` ("JPG", ".tif", "jpeg"...), or None when unsupported."""
    return _ALIASES.get(name.strip().lower().lstrip("."))


def format_from_path(path: object) -> str | None:
    """Canonical output format for a file name's extension, or None when unknown or missing."""
    suffix = str(path).rsplit("/", 1)[-1].rsplit("\\", 1)[-1]
    if "." not in suffix:
        return None
    return normalize_format(suffix.rsplit(".", 1)[-1])


def _canonical(fmt: str) -> str:
    canonical = normalize_format(fmt)
    if canonical is None:
        raise ValueError(f"unknown image format {fmt!r} (known: {', '.join(OUTPUT_FORMATS)})")
    return canonical


def format_supports_16bit(fmt: str) -> bool:
    """True if ``fmt`` keeps 16 bits per sample (PNG, TIFF); other formats are written at 8 bits."""
    return _canonical(fmt) in _SUPPORTS_16BIT


def format_supports_alpha(fmt: str) -> bool:
    """True if ``fmt`` stores an alpha channel (PNG, WebP, TIFF). JPEG and BMP do not."""
    return _canonical(fmt) in _SUPPORTS_ALPHA


def format_supports_gray(fmt: str) -> bool:
    """True if ``fmt`` stores a single gray channel; WebP has no gray mode (written as RGB)."""
    return _canonical(fmt) in _SUPPORTS_GRAY


def format_supports_lossless(fmt: str) -> bool:
    """True if ``fmt`` can be written without loss (WebP only with ``lossless=True``); JPEG cannot."""
    return _canonical(fmt) in _SUPPORTS_LOSSLESS


def format_supports_metadata(fmt: str) -> bool:
    """True if an ICC profile and EXIF are embedded for ``fmt`` (all but BMP)."""
    return _canonical(fmt) in _SUPPORTS_METADATA


# --------------------------------------------------------------------------------------------
# Pillow-based encoders (8-bit)
# --------------------------------------------------------------------------------------------


def _to_pil(q: np.ndarray) -> PILImage.Image:
    """uint8 H×W×C (C = 1..4) to a Pillow image in mode L, LA, RGB or RGBA."""
    if q.dtype != np.uint8:
        raise ValueError(f"Pillow encoders take 8-bit samples, got {q.dtype}")
    arr = np.ascontiguousarray(q[..., 0] if q.shape[2] == 1 else q)
    return PILImage.fromarray(arr)


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
    """Write an 8-bit PNG, JPEG, WebP or BMP with Pillow."""
    im = _to_pil(q)
    params: dict[str, object] = {}
    if fmt in _SUPPORTS_METADATA:
        if icc:
            params["icc_profile"] = icc
        if exif:
            params["exif"] = exif
    if fmt == "png":
        im.save(handle, format="PNG", compress_level=6, **params)
    elif fmt == "jpeg":
        q_value = 95 if quality is None else quality
        if q_value >= 90:
            params["subsampling"] = 0  # 4:4:4: chroma subsampling is visible at high quality
        im.save(handle, format="JPEG", quality=q_value, **params)
    elif fmt == "webp":
        if lossless:
            # exact: keep the colour under fully transparent pixels, so the round trip is exact.
            params.update(lossless=True, exact=True)
            if quality is not None:
                params["quality"] = quality  # the compression effort in lossless mode
        else:
            params["quality"] = 90 if quality is None else quality
        im.save(handle, format="WEBP", **params)
    elif fmt == "bmp":
        im.save(handle, format="BMP")
    else:  # pragma: no cover - dispatch is exhaustive
        raise ValueError(f"no Pillow encoder for {fmt}")


# --------------------------------------------------------------------------------------------
# PNG encoder (any depth, 1..4 channels, with iCCP and eXIf)
# --------------------------------------------------------------------------------------------

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_COLOR_TYPE = {1: 0, 2: 4, 3: 2, 4: 6}
_PNG_BLOCK_BYTES = 4 << 20  # rows are filtered and compressed in blocks of about this many bytes


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_filter_block(rows: np.ndarray, prev: np.ndarray, bpp: int) -> np.ndarray:
    """Filter rows (N×B uint8, the raw bytes) given the row above the first; return N×(1+B) uint8.

    Each row gets the filter (None, Sub, Up, Average, Paeth) whose output has the smallest sum of
    absolute values read as signed bytes, the heuristic of libpng and the PNG specification.
    """
    n, width = rows.shape
    x = rows
    up = np.empty_like(x)
    up[0] = prev
    up[1:] = x[:-1]
    left = np.zeros_like(x)
    left[:, bpp:] = x[:, :-bpp]
    upleft = np.zeros_like(x)
    upleft[:, bpp:] = up[:, :-bpp]

    candidates = np.empty((5, n, width), dtype=np.uint8)  # uint8 arithmetic wraps modulo 256
    candidates[0] = x
    np.subtract(x, left, out=candidates[1])
    np.subtract(x, up, out=candidates[2])
    average = (left >> 1) + (up >> 1) + (left & up & 1)  # floor((a + b) / 2) without overflow
    np.subtract(x, average, out=candidates[3])
    del average
    a16 = left.astype(np.int16)
    b16 = up.astype(np.int16)
    c16 = upleft.astype(np.int16)
    pa = np.abs(b16 - c16)  # |p - a| with p = a + b - c
    pb = np.abs(a16 - c16)  # |p - b|
    pc = np.abs(a16 + b16 - 2 * c16)  # |p - c|
    del a16, b16, c16
    predictor = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, upleft))
    del pa, pb, pc
    np.subtract(x, predictor, out=candidates[4])
    del predictor, up, left, upleft

    magnitude = np.minimum(candidates, 0 - candidates)  # |v| of v read as a signed byte
    cost = magnitude.sum(axis=2, dtype=np.uint32)  # 5×N
    del magnitude
    choice = cost.argmin(axis=0)
    out = np.empty((n, width + 1), dtype=np.uint8)
    out[:, 0] = choice
    out[:, 1:] = candidates[choice, np.arange(n)]
    return out


def encode_png(handle: BinaryIO, q: np.ndarray, *, icc: bytes | None, exif: bytes | None) -> None:
    """Write ``q`` (uint8 or uint16, H×W×C with C = 1..4) as a PNG, with optional iCCP and eXIf."""
    height, width, channels = q.shape
    depth = 16 if q.dtype == np.uint16 else 8
    if q.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"PNG samples must be uint8 or uint16, got {q.dtype}")
    handle.write(_PNG_SIGNATURE)
    ihdr = struct.pack(">IIBBBBB", width, height, depth, _PNG_COLOR_TYPE[channels], 0, 0, 0)
    handle.write(_png_chunk(b"IHDR", ihdr))
    if icc:
        handle.write(_png_chunk(b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(icc)))
    if exif:
        handle.write(_png_chunk(b"eXIf", exif[6:] if exif.startswith(b"Exif\x00\x00") else exif))

    raw = np.ascontiguousarray(q.astype(">u2", copy=False) if depth == 16 else q)
    raw = raw.view(np.uint8).reshape(height, -1)
    bpp = channels * depth // 8
    block_rows = max(1, _PNG_BLOCK_BYTES // max(1, raw.shape[1]))
    compressor = zlib.compressobj(6, zlib.DEFLATED, 15, 9)
    prev = np.zeros(raw.shape[1], dtype=np.uint8)
    for start in range(0, height, block_rows):
        block = raw[start : start + block_rows]
        data = compressor.compress(_png_filter_block(block, prev, bpp).tobytes())
        prev = block[-1]
        if data:
            handle.write(_png_chunk(b"IDAT", data))
    handle.write(_png_chunk(b"IDAT", compressor.flush()))
    handle.write(_png_chunk(b"IEND", b""))


# --------------------------------------------------------------------------------------------
# TIFF writer
# --------------------------------------------------------------------------------------------

_TIFF_STRIP_BYTES = 256 << 10
#: IFD0 tags of an EXIF block that describe the picture (not its layout) and are copied into TIFF.
EXIF_IFD0_TAGS = frozenset({270, 271, 272, 305, 306, 315, 33432})
_EXIF_SUB_IFDS = (0x8769, 0x8825)  # Exif, GPSInfo


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
        for tag in _EXIF_SUB_IFDS:
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
