"""Writing images: an :class:`~jdsr_cli.io.imagedata.Image` encoded and written atomically.

Samples are quantised by :func:`jdsr_cli.io.quantize.quantize` (clip to [0, 1], round half up) to the
target depth (``bit_depth`` or the image's own); formats without 16-bit support get 8 bits
(:func:`~jdsr_cli.io.formats.format_supports_16bit` tells the caller). Gray stays gray where the
format has a gray mode, else becomes RGB. Writing alpha to JPEG or BMP raises
:class:`ImageWriteError`, unless every alpha sample rounds to fully opaque, in which case the alpha
channel is dropped without loss. An ICC profile whose colour space does not match the written
channels is not embedded (a warning is logged), since it would make viewers misrender the file.
Every file is written through :func:`jdsr_cli.io.atomic.atomic_open`: an existing file is only
replaced by a complete new one.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import numpy as np

from jdsr_cli.errors import ImageWriteError, UsageError
from jdsr_cli.io import encoders, png_encoder, tiff_codec
from jdsr_cli.io.atomic import atomic_open
from jdsr_cli.io.formats import (
    MAX_DIMENSION,
    OUTPUT_FORMATS,
    format_from_path,
    format_supports_16bit,
    format_supports_alpha,
    format_supports_gray,
    format_supports_lossless,
    format_supports_metadata,
    normalize_format,
)
from jdsr_cli.io.imagedata import Image
from jdsr_cli.io.metadata import exif_for_output, icc_matches, one_line
from jdsr_cli.io.plugins import missing_writer_message, writer_available
from jdsr_cli.io.quantize import quantize

__all__ = ["write_image", "resolve_output_format", "write_atomically", "check_write_options", "check_size",
           "prepare_samples"]

logger = logging.getLogger(__name__)

#: 8-bit PNGs larger than this go through our streaming encoder. Pillow holds an RGB(A) image at 4 bytes a
#: pixel, so it first copies the samples into a buffer larger than the output itself (768 MB more for a 192 MP
#: ×4 upscale of a phone photo); ours filters and compresses 4 MB blocks of the samples where they lie, in about
#: the same time, for ~5 % more bytes (docs/usage.md; bench/bench_png.py).
STREAMING_PNG_PIXELS = 16_000_000


def resolve_output_format(path: str | os.PathLike[str], format: str | None = None) -> str:  # noqa: A002
    """The canonical output format for ``format`` or ``path``'s extension; ImageWriteError if none."""
    name = os.fspath(path)
    if format is not None:
        canonical = normalize_format(format)
        if canonical is None:
            raise ImageWriteError(
                f"{name}: unsupported output format {format!r} (use {', '.join(OUTPUT_FORMATS)})"
            )
        return canonical
    canonical = format_from_path(name)
    if canonical is None:
        suffix = Path(name).suffix
        what = f"extension {suffix!r}" if suffix else "no file extension"
        known = ", ".join(f".{fmt}" for fmt in ("png", "jpg", "webp", "tiff", "bmp", "gif", "heic"))
        raise ImageWriteError(f"{name}: cannot tell the output format from {what} (use {known} or .avif)")
    return canonical


def check_write_options(name: str, fmt: str, quality: int | None, lossless: bool) -> None:
    """The option checks shared by images and animations."""
    if quality is not None and not 1 <= quality <= 100:
        raise UsageError(f"quality must be between 1 and 100, got {quality}")
    if lossless and not format_supports_lossless(fmt):
        raise ImageWriteError(f"{name}: {fmt.upper()} cannot be saved losslessly; use PNG, WebP or TIFF")
    if not writer_available(fmt):
        raise ImageWriteError(f"{name}: {missing_writer_message(fmt)}")


def check_size(name: str, fmt: str, width: int, height: int) -> None:
    """``fmt`` can store a width×height image (image commands ask before the work, the writer again)."""
    if height == 0 or width == 0:
        raise ImageWriteError(f"{name}: cannot write an empty image ({width}x{height})")
    limit = MAX_DIMENSION[fmt]
    if max(width, height) > limit:
        raise ImageWriteError(
            f"{name}: {width}x{height} is too large for {fmt.upper()} (at most {limit} pixels a side); "
            "save it as PNG or TIFF (--format png)"
        )


def prepare_samples(name: str, pixels: np.ndarray, fmt: str, depth: int) -> np.ndarray:
    """Quantised samples laid out as ``fmt`` stores them (alpha dropped if opaque, gray expanded...)."""
    q = quantize(pixels, depth)
    if q.shape[2] in (2, 4) and not format_supports_alpha(fmt):
        if not (q[:, :, -1] == np.iinfo(q.dtype).max).all():
            raise ImageWriteError(
                f"{name}: {fmt.upper()} cannot store transparency; remove the alpha channel first "
                f"or write PNG, WebP or TIFF"
            )
        q = q[:, :, :-1]  # fully opaque: dropping the alpha loses nothing
    if q.shape[2] in (1, 2) and not format_supports_gray(fmt):
        q = np.concatenate([q[:, :, :1]] * 3 + ([q[:, :, 1:]] if q.shape[2] == 2 else []), axis=2)
    if fmt == "tiff" and depth == 16 and q.shape[2] == 2:
        q = q[:, :, [0, 0, 0, 1]]  # see jdsr_cli.io.tiff_codec: 16-bit gray + alpha TIFF as RGBA
    return q


def _metadata_for(name: str, image: Image, fmt: str, channels: int) -> tuple[bytes | None, bytes | None]:
    """(ICC, EXIF) to embed: none for formats without metadata, no mismatched profile."""
    if not format_supports_metadata(fmt):
        return None, None
    icc = image.icc_profile or None
    if icc is not None and not icc_matches(icc, channels):
        logger.warning(
            "%s: not embedding the ICC profile: its colour space %r does not match %s pixels",
            name,
            icc[16:20].decode("latin-1").strip(),
            "gray" if channels in (1, 2) else "RGB",
        )
        icc = None
    exif = exif_for_output(image.exif, name) if image.exif else None
    return icc, exif


def write_atomically(path: str | os.PathLike[str], fmt: str, encode: Callable[[BinaryIO], None]) -> None:
    """Run ``encode`` on a temp file that replaces ``path`` only when complete; one-line errors."""
    name = os.fspath(path)
    try:
        with atomic_open(path) as handle:
            encode(handle)
    except OSError as exc:
        if exc.errno is None:  # Pillow reports encoder failures as OSError without errno
            raise ImageWriteError(f"{name}: cannot encode {fmt.upper()}: {one_line(exc)}") from exc
        raise ImageWriteError(f"{name}: cannot write: {_os_reason(name, exc)}") from exc
    except (ImageWriteError, UsageError):
        raise
    except Exception as exc:  # noqa: BLE001 - encoder failures of any kind become one-line errors
        raise ImageWriteError(f"{name}: cannot encode {fmt.upper()}: {one_line(exc)}") from exc


def _os_reason(name: str, exc: OSError) -> str:
    reason = exc.strerror or one_line(exc)
    parent = Path(name).parent
    if isinstance(exc, NotADirectoryError) or (parent.exists() and not parent.is_dir()):
        return f"{parent} is not a folder"
    if isinstance(exc, FileNotFoundError) and not parent.exists():
        return f"the folder {parent} does not exist"
    return reason


def write_image(
    path: str | os.PathLike[str],
    image: Image,
    *,
    format: str | None = None,  # noqa: A002 - the public keyword is "format"
    quality: int | None = None,
    lossless: bool = False,
    bit_depth: int | None = None,
    strip_metadata: bool = False,
) -> None:
    """Encode ``image`` and write it atomically to ``path``.

    ``format`` (png, jpg/jpeg, webp, tif/tiff, bmp, gif, heic/heif, avif) defaults to the extension.
    ``quality`` (1..100) applies to JPEG (default 95, 4:4:4 chroma at 90 and above), WebP, HEIC and
    AVIF (default 90; for lossless WebP, the compression effort). ``lossless`` selects lossless WebP;
    it is an error for lossy-only formats. ``bit_depth`` (8 or 16) overrides the image's; formats
    without 16-bit support get 8. ``strip_metadata`` drops the ICC profile and EXIF. The parent folder
    must exist. Failures raise :class:`ImageWriteError` (a missing HEIC/AVIF encoder names the package).
    """
    name = os.fspath(path)
    fmt = resolve_output_format(path, format)
    depth = image.bit_depth if bit_depth is None else bit_depth
    if depth not in (8, 16):
        raise UsageError(f"bit depth must be 8 or 16, got {depth}")
    check_write_options(name, fmt, quality, lossless)
    depth = depth if format_supports_16bit(fmt) else 8
    check_size(name, fmt, image.width, image.height)
    q = prepare_samples(name, image.pixels, fmt, depth)
    icc, exif = (None, None) if strip_metadata else _metadata_for(name, image, fmt, q.shape[2])

    def encode(handle: BinaryIO) -> None:
        if fmt == "png" and (depth == 16 or image.width * image.height > STREAMING_PNG_PIXELS):
            png_encoder.encode_png(handle, q, icc=icc, exif=exif)
        elif fmt == "tiff":
            tiff_codec.encode_tiff(handle, q, icc=icc, exif=exif)
        else:
            encoders.encode_pillow(handle, q, fmt, icc=icc, exif=exif, quality=quality, lossless=lossless)

    write_atomically(path, fmt, encode)
