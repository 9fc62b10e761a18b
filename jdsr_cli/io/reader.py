"""Reading images: bytes in, an upright float32 :class:`~jdsr_cli.io.imagedata.Image` out.

Files are read as bytes (so any path works, whatever its characters) and decoded with Pillow; the
first frame or page is used (:mod:`jdsr_cli.io.animation` reads every frame). Modes become channels
and depths as :mod:`jdsr_cli.io.modes` says; deeper sources go through :mod:`jdsr_cli.io.highdepth`;
EXIF, ICC and orientation follow :mod:`jdsr_cli.io.metadata`; the pixel limit is
:mod:`jdsr_cli.io.limits`'. Encapsulated PostScript is refused (Pillow would run Ghostscript on it).

Damage: a file that cannot be decoded raises :class:`ImageReadError` (one line, path first). A file
decoded despite damage the decoder noticed comes back with ``Image.warnings`` (see
:mod:`jdsr_cli.io.integrity`), or raises with that warning when ``strict=True``. Truncated data is
never padded (``ImageFile.LOAD_TRUNCATED_IMAGES``, a Pillow global, is expected to stay False).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

from jdsr_cli.errors import ImageReadError
from jdsr_cli.io import highdepth, integrity
from jdsr_cli.io.imagedata import Image
from jdsr_cli.io.limits import check_pixel_limit, open_pil, resolve_limit
from jdsr_cli.io.metadata import apply_orientation, one_line, orientation_from_tags, read_metadata
from jdsr_cli.io.modes import pil_to_array
from jdsr_cli.io.tiff_codec import tiff_header_info

__all__ = ["read_image", "decode_image", "read_bytes", "load_frame", "Decoded", "finish_warnings"]


def read_bytes(path: str | os.PathLike[str]) -> bytes:
    """The whole file, or an ImageReadError that says why not."""
    name = os.fspath(path)
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise ImageReadError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise ImageReadError(f"{name}: is a folder, not an image file") from None
    except PermissionError:
        raise ImageReadError(f"{name}: permission denied") from None
    except OSError as exc:
        raise ImageReadError(f"{name}: cannot read the file: {exc.strerror or one_line(exc)}") from exc


def read_image(path: str | os.PathLike[str], *, max_pixels: int | None = None, strict: bool = False) -> Image:
    """Read and decode the image at ``path`` (first frame); see the module documentation.

    ``max_pixels`` replaces Pillow's decompression-bomb limit for this call (0: no limit).
    ``strict`` turns the first decoder warning into an :class:`ImageReadError`.
    Every failure is an :class:`ImageReadError` whose one-line message starts with the path.
    """
    name = os.fspath(path)
    return decode_image(read_bytes(path), name=name, max_pixels=max_pixels, strict=strict)


def decode_image(
    data: bytes, *, name: str = "<bytes>", max_pixels: int | None = None, strict: bool = False
) -> Image:
    """Decode an encoded image held in memory; ``name`` is used in messages."""
    limit = resolve_limit(max_pixels)
    if not data:
        raise ImageReadError(f"{name}: empty file (0 bytes)")
    with integrity.capture_pillow_warnings() as pillow_warnings:
        pil = open_pil(data, name)
        if pil is None:  # a TIFF layout that Pillow cannot open
            return _decode_tiff_fallback(data, name, limit)
        with pil:
            check_pixel_limit(name, *pil.size, limit)
            decoded = load_frame(pil, data, name)
    found = decoded.warnings + pillow_warnings + integrity.file_warnings(data, pil.format, pil.mode)
    return Image(decoded.pixels, decoded.depth, decoded.icc, decoded.exif, pil.format,
                 finish_warnings(name, found, strict))


@dataclass
class Decoded:
    """One decoded frame before it becomes an Image."""

    pixels: np.ndarray
    depth: int
    icc: bytes | None
    exif: bytes | None
    warnings: list[str]


def load_frame(pil: PILImage.Image, data: bytes, name: str, *, deep: bool = True) -> Decoded:
    """Decode the current frame of an opened Pillow image: upright pixels, depth, metadata, warnings.

    ``deep=False`` keeps Pillow's 8-bit decode even for a deeper source (animation frames: the deep
    decoders only see the first frame). Pillow's own Python warnings are not collected here: wrap the open and every load in
    :func:`jdsr_cli.io.integrity.capture_pillow_warnings`.
    """
    width, height = pil.size
    found: list[str] = []
    try:
        pil.load()  # decodes everything: truncated or corrupt data raises here
    except MemoryError:
        raise ImageReadError(f"{name}: not enough memory to decode {width}x{height} pixels") from None
    except Exception as exc:  # noqa: BLE001 - Pillow raises OSError, SyntaxError, ValueError...
        raise ImageReadError(f"{name}: truncated or corrupt image data ({one_line(exc)})") from exc
    try:
        meta = read_metadata(pil)
        if meta.warning:
            found.append(meta.warning)
        arr, depth, icc = _pixels(pil, data, meta.icc, found, name) if deep else pil_to_array(pil, meta.icc, name)
    except ImageReadError:
        raise
    except MemoryError:
        raise ImageReadError(f"{name}: not enough memory to decode {width}x{height} pixels") from None
    except Exception as exc:  # noqa: BLE001
        raise ImageReadError(f"{name}: cannot decode image ({one_line(exc)})") from exc
    arr = np.ascontiguousarray(apply_orientation(arr, meta.orientation))
    return Decoded(arr, depth, icc, meta.exif, found)


def _pixels(
    pil: PILImage.Image, data: bytes, icc: bytes | None, found: list[str], name: str
) -> tuple[np.ndarray, int, bytes | None]:
    """Pixels at the source's full depth when Pillow would reduce it; else Pillow's, normalised."""
    depth = highdepth.source_depth(data, pil)
    if depth > 8:
        deep = highdepth.decode_high_depth(data, pil, depth)
        if deep is not None:
            return deep, 16, icc
        found.append(f"read at 8 bits: the {depth}-bit {pil.format} decoder failed on this file")
    return pil_to_array(pil, icc, name)


def finish_warnings(name: str, found: list[str], strict: bool) -> tuple[str, ...]:
    """Deduplicate; in strict mode the first warning becomes the ImageReadError."""
    unique = tuple(dict.fromkeys(found))
    if strict and unique:
        raise ImageReadError(f"{name}: {unique[0]} (strict mode)")
    return unique


def _decode_tiff_fallback(data: bytes, name: str, limit: int | None) -> Image:
    """A TIFF Pillow cannot open, through OpenCV (see :mod:`jdsr_cli.io.highdepth`)."""
    tags = tiff_header_info(data)
    if tags is None or 256 not in tags or 257 not in tags:
        raise ImageReadError(f"{name}: not a readable TIFF file")
    check_pixel_limit(name, int(tags[256]), int(tags[257]), limit)
    pixels, depth = highdepth.decode_tiff_fallback(data, name, tags)
    icc = tags.get(34675)
    upright = np.ascontiguousarray(apply_orientation(pixels, orientation_from_tags(tags)))
    return Image(upright, depth, bytes(icc) if icc else None, None, "TIFF")
