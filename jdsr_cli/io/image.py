"""Reading and writing images as float32 arrays, keeping bit depth, alpha, ICC profile and EXIF.

Reading (:func:`read_image`, :func:`decode_image`)
--------------------------------------------------
Files are read as bytes (so any path works, whatever its characters) and decoded with Pillow; the first
frame or page is used. 16-bit colour sources (RGB, RGBA, gray + alpha PNG; 16-bit RGB(A) TIFF), which
Pillow would reduce to 8 bits, are decoded with OpenCV instead, after Pillow has decoded (and so
checked) the whole file; should OpenCV fail on one, it is read at 8 bits with a logged warning.
A TIFF that Pillow cannot open (32-bit float RGB...) is handed to OpenCV, and accepted only if OpenCV
returns every sample at full precision (a 16-bit gray + alpha TIFF is refused: OpenCV drops its alpha).
Encapsulated PostScript is refused (Pillow would run Ghostscript on it).

Mode normalisation (Pillow mode -> channels, ``bit_depth``):

=================  ==================================================================  =====
source mode        result                                                              depth
=================  ==================================================================  =====
1                  gray (0 or 1)                                                       8
L                  gray; gray + alpha if the file has a tRNS colour key                8
LA, La             gray + alpha (La is un-premultiplied)                               8
P, PA              RGBA if the palette or file has transparency, else RGB              8
RGB, RGBX          RGB; RGBA if the file has a tRNS colour key                         8
RGBA, RGBa         RGBA (RGBa is un-premultiplied)                                     8
CMYK               RGB: through the embedded ICC profile to sRGB when there is one     8
                   (the result then carries an sRGB profile), else Pillow's naive
                   conversion (the result carries no profile)
YCbCr, HSV         RGB (Pillow conversion)                                             8
LAB                RGB through LittleCMS (Lab D50 to sRGB); carries an sRGB profile    8
I;16, I;16L/B/N    gray                                                                16
I (32-bit int)     gray, clipped to 0..65535                                           16
F (32-bit float)   gray, clipped to [0, 1]                                             16
16-bit PNG/TIFF    gray, gray + alpha, RGB or RGBA with all 16 bits (OpenCV)           16
=================  ==================================================================  =====

A fully opaque alpha channel is kept: dropping it is the caller's decision.
The EXIF orientation is applied to the pixels (the transposition of ``PIL.ImageOps.exif_transpose``)
and the ``exif`` kept on the :class:`Image` has Orientation 1. For a TIFF source, ``exif`` keeps the
descriptive IFD0 tags (description, make, model, software, date, artist, copyright) and the
Exif and GPS sub-IFDs, not the tags that describe the TIFF layout. Unreadable EXIF is dropped rather
than failing the read. XMP, IPTC, DPI (other than in EXIF) and text chunks are not kept.

Pillow's decompression-bomb limit stays on: an image with more pixels than ``PIL.Image.MAX_IMAGE_PIXELS``
(Pillow's default, about 89.5 million) is refused with an :class:`ImageReadError` that names
``--max-pixels``; ``read_image(..., max_pixels=N)`` sets the limit for that call only (0 disables it).
Unlike Pillow, which only warns between the limit and twice the limit, the limit here is a hard one.
Truncated or corrupt files raise rather than decode partially (``ImageFile.LOAD_TRUNCATED_IMAGES``,
a Pillow global, is expected to keep its default, False).

Writing (:func:`write_image`)
-----------------------------
See :mod:`jdsr_cli.io.formats` for what each format holds. Samples are clipped to [0, 1] and rounded half
up to the target depth (``bit_depth`` or the image's own); formats without 16-bit support are written
at 8 bits (:func:`format_supports_16bit` tells the caller). Gray stays gray except in WebP (RGB).
Writing alpha to JPEG or BMP raises :class:`ImageWriteError`, unless every alpha sample rounds to fully
opaque, in which case the alpha channel is dropped without loss. An ICC profile whose colour space does
not match the written channels (an RGB profile on gray pixels, a CMYK profile...) is not embedded
(a warning is logged), since it would make viewers misrender the file. Every file is written through
:func:`jdsr_cli.io.atomic.atomic_open`: an existing file is only replaced by a complete new one.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image as PILImage
from PIL import ImageCms, UnidentifiedImageError

from jdsr_cli.errors import ImageReadError, ImageWriteError, UsageError
from jdsr_cli.io import formats as _formats
from jdsr_cli.io.atomic import atomic_open
from jdsr_cli.io.formats import (
    OUTPUT_FORMATS,
    format_from_path,
    format_supports_16bit,
    format_supports_alpha,
    format_supports_gray,
    format_supports_lossless,
    format_supports_metadata,
    normalize_format,
)

__all__ = [
    "Image",
    "read_image",
    "decode_image",
    "write_image",
    "resolve_output_format",
    "OUTPUT_FORMATS",
    "format_supports_16bit",
    "format_supports_alpha",
    "format_supports_gray",
    "format_supports_lossless",
    "format_supports_metadata",
    "normalize_format",
]

logger = logging.getLogger(__name__)

_ORIENTATION = 0x0112
_EXIF_PREFIX = b"Exif\x00\x00"
#: Pillow formats never opened: EPS would run Ghostscript on untrusted input.
_REFUSED_FORMATS = frozenset({"EPS"})
_PIL_LIMIT_LOCK = threading.Lock()


# --------------------------------------------------------------------------------------------
# Data model
# --------------------------------------------------------------------------------------------


@dataclass
class Image:
    """An image as float32 samples in [0, 1] plus what is needed to write it back faithfully.

    ``pixels`` is H×W×C with C = 1 (gray), 2 (gray + alpha), 3 (RGB) or 4 (RGBA); a 2-D array is
    taken as H×W×1 and other dtypes are converted to float32. ``bit_depth`` (8 or 16) is the
    precision of the source, kept by default on output. ``exif`` is raw EXIF (starting with
    ``b"Exif\\0\\0"``) whose Orientation, if any, is 1: the pixels are already upright.
    """

    pixels: np.ndarray
    bit_depth: int = 8
    icc_profile: bytes | None = None
    exif: bytes | None = None
    source_format: str | None = None

    def __post_init__(self) -> None:
        pixels = np.asarray(self.pixels)
        if pixels.ndim == 2:
            pixels = pixels[:, :, None]
        if pixels.ndim != 3 or not 1 <= pixels.shape[2] <= 4:
            raise ValueError(f"pixels must be H×W×C with C in 1..4, got shape {pixels.shape}")
        if pixels.dtype != np.float32:
            pixels = pixels.astype(np.float32)
        self.pixels = pixels
        if self.bit_depth not in (8, 16):
            raise ValueError(f"bit_depth must be 8 or 16, got {self.bit_depth}")

    @property
    def channels(self) -> int:
        return int(self.pixels.shape[2])

    @property
    def has_alpha(self) -> bool:
        return self.channels in (2, 4)

    @property
    def is_gray(self) -> bool:
        return self.channels in (1, 2)

    @property
    def color(self) -> np.ndarray:
        """The colour samples without alpha (a view): H×W×1 or H×W×3."""
        return self.pixels[:, :, : self.channels - 1] if self.has_alpha else self.pixels

    @property
    def alpha(self) -> np.ndarray | None:
        """The alpha channel (a view, H×W), or None."""
        return self.pixels[:, :, -1] if self.has_alpha else None

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        """(width, height), as in Pillow."""
        return self.width, self.height

    def without_alpha(self) -> Image:
        """A copy sharing metadata whose pixels are :attr:`color` (self if there is no alpha)."""
        if not self.has_alpha:
            return self
        return dataclasses.replace(self, pixels=np.ascontiguousarray(self.color))


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]


def read_image(path: str | os.PathLike[str], *, max_pixels: int | None = None) -> Image:
    """Read and decode the image at ``path``; see the module documentation for the rules.

    ``max_pixels`` replaces Pillow's decompression-bomb limit for this call (0: no limit).
    Every failure is an :class:`ImageReadError` whose one-line message starts with the path.
    """
    name = os.fspath(path)
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise ImageReadError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise ImageReadError(f"{name}: is a folder, not an image file") from None
    except PermissionError:
        raise ImageReadError(f"{name}: permission denied") from None
    except OSError as exc:
        raise ImageReadError(f"{name}: cannot read the file: {exc.strerror or _one_line(exc)}") from exc
    return decode_image(data, name=name, max_pixels=max_pixels)


def decode_image(data: bytes, *, name: str = "<bytes>", max_pixels: int | None = None) -> Image:
    """Decode an encoded image held in memory; ``name`` is used in error messages."""
    if max_pixels is not None and max_pixels < 0:
        raise ValueError(f"max_pixels must be positive or 0 (no limit), got {max_pixels}")
    if not data:
        raise ImageReadError(f"{name}: empty file (0 bytes)")

    pil, limit = _open_pil(data, name, max_pixels)
    if pil is None:  # a TIFF layout that Pillow cannot open
        return _decode_tiff_with_cv2(data, name, limit)

    with pil:
        width, height = pil.size
        _check_pixel_limit(name, width, height, limit)
        try:
            pil.load()  # decodes everything: truncated or corrupt data raises here
        except MemoryError:
            raise ImageReadError(f"{name}: not enough memory to decode {width}x{height} pixels") from None
        except Exception as exc:  # noqa: BLE001 - Pillow raises OSError, SyntaxError, ValueError...
            raise ImageReadError(f"{name}: truncated or corrupt image data ({_one_line(exc)})") from exc

        try:
            icc, exif, orientation = _metadata(pil)
            source_format = pil.format
            decoded = None
            if _needs_cv2(data, pil):
                decoded = _decode_cv2(data, gray_alpha=_source_is_gray_alpha(data, pil))
                if decoded is None:
                    logger.warning(
                        "%s: OpenCV could not decode this 16-bit image; reading it at 8 bits", name
                    )
            if decoded is not None:
                arr, depth = decoded
            else:
                arr, depth, icc = _pil_to_array(pil, icc)
        except ImageReadError:
            raise
        except MemoryError:
            raise ImageReadError(f"{name}: not enough memory to decode {width}x{height} pixels") from None
        except Exception as exc:  # noqa: BLE001
            raise ImageReadError(f"{name}: cannot decode image ({_one_line(exc)})") from exc

    arr = _apply_orientation(arr, orientation)
    return Image(np.ascontiguousarray(arr), depth, icc, exif, source_format)


def _open_pil(data: bytes, name: str, max_pixels: int | None) -> tuple[PILImage.Image | None, int | None]:
    """Open (lazily) with Pillow's own bomb check disabled; return the image and the limit to apply."""
    PILImage.init()
    formats = [fmt for fmt in PILImage.OPEN if fmt not in _REFUSED_FORMATS]
    with _PIL_LIMIT_LOCK:
        default_limit = PILImage.MAX_IMAGE_PIXELS
        limit = default_limit if max_pixels is None else (max_pixels or None)
        PILImage.MAX_IMAGE_PIXELS = None  # checked by us, with our limit and message
        try:
            return PILImage.open(io.BytesIO(data), formats=formats), limit
        except UnidentifiedImageError:
            if data[:4] in (b"II*\x00", b"MM\x00*"):
                return None, limit
            raise ImageReadError(f"{name}: not a recognised image format (or corrupt header)") from None
        except Exception as exc:  # noqa: BLE001
            raise ImageReadError(f"{name}: corrupt image header ({_one_line(exc)})") from exc
        finally:
            PILImage.MAX_IMAGE_PIXELS = default_limit


def _check_pixel_limit(name: str, width: int, height: int, limit: int | None) -> None:
    if limit is not None and width * height > limit:
        raise ImageReadError(
            f"{name}: {width}x{height} = {width * height:,} pixels exceeds the decompression-bomb limit "
            f"of {limit:,} pixels; if you trust this file, raise it with --max-pixels {width * height}"
        )


def _metadata(pil: PILImage.Image) -> tuple[bytes | None, bytes | None, int]:
    """(ICC profile, EXIF with Orientation 1, orientation to apply). EXIF failures drop the EXIF."""
    icc = pil.info.get("icc_profile") or None
    try:
        exif = pil.getexif()
        orientation = exif.get(_ORIENTATION, 1)
        if not isinstance(orientation, int) or not 1 <= orientation <= 8:
            orientation = 1
        if pil.format == "TIFF":
            raw = _tiff_exif(exif)
        elif len(exif) == 0:
            raw = None
        elif exif.get(_ORIENTATION, 1) != 1 or "exif" not in pil.info:
            # Rebuilt by Pillow: to reset the orientation, or because the EXIF came from elsewhere
            # (e.g. a PNG "Raw profile type exif" text chunk).
            if _ORIENTATION in exif:
                exif[_ORIENTATION] = 1
            raw = exif.tobytes()
        else:
            raw = pil.info["exif"]  # untouched: nothing to change
            if not raw.startswith(_EXIF_PREFIX):
                raw = _EXIF_PREFIX + raw
    except Exception as exc:  # noqa: BLE001 - broken EXIF is common; the pixels still count
        logger.warning("ignoring unreadable EXIF data: %s", _one_line(exc))
        return icc, None, 1
    return icc, raw, orientation


def _tiff_exif(tiff_tags: PILImage.Exif) -> bytes | None:
    """EXIF for a TIFF source: its descriptive IFD0 tags and Exif/GPS sub-IFDs, Orientation 1."""
    out = PILImage.Exif()
    for tag in _formats.EXIF_IFD0_TAGS:
        if tag in tiff_tags:
            out[tag] = tiff_tags[tag]
    for tag in (0x8769, 0x8825):
        sub = tiff_tags.get_ifd(tag)
        if sub:
            out[tag] = dict(sub)
    if len(out) == 0:
        return None
    if _ORIENTATION in tiff_tags:
        out[_ORIENTATION] = 1
    return out.tobytes()


def _png_ihdr(data: bytes) -> tuple[int, int] | None:
    """(bit depth, colour type) of a PNG, or None."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and len(data) >= 26:
        return data[24], data[25]
    return None


def _needs_cv2(data: bytes, pil: PILImage.Image) -> bool:
    """True for 16-bit sources that Pillow would decode at 8 bits."""
    if pil.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        return False
    if pil.format == "PNG":
        ihdr = _png_ihdr(data)
        return ihdr is not None and ihdr[0] == 16 and ihdr[1] in (2, 4, 6)
    if pil.format == "TIFF":
        bits = getattr(pil, "tag_v2", {}).get(258, (8,))
        bits = bits if isinstance(bits, tuple) else (bits,)
        return max(bits, default=8) > 8
    return False


def _source_is_gray_alpha(data: bytes, pil: PILImage.Image) -> bool:
    ihdr = _png_ihdr(data)
    if ihdr is not None:
        return ihdr[1] == 4
    return pil.mode in ("LA", "La")


def _decode_cv2(data: bytes, *, gray_alpha: bool = False) -> tuple[np.ndarray, int] | None:
    """Decode with OpenCV keeping 16 bits: (float32 H×W×C in RGB order, depth), or None on failure."""
    arr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None or arr.dtype != np.uint16:
        return None
    if arr.ndim == 2:
        arr = arr[:, :, None]
    channels = arr.shape[2]
    if channels == 3:
        arr = arr[:, :, ::-1]
    elif channels == 4:
        arr = arr[:, :, [0, 3]] if gray_alpha else arr[:, :, [2, 1, 0, 3]]
    elif channels != 1:
        return None
    return np.divide(arr, 65535, dtype=np.float32), 16


def _samples_to_float(arr: np.ndarray, name: str) -> tuple[np.ndarray, int]:
    if arr.dtype == np.uint8:
        return np.divide(arr, 255, dtype=np.float32), 8
    if arr.dtype == np.uint16:
        return np.divide(arr, 65535, dtype=np.float32), 16
    if arr.dtype in (np.float32, np.float64, np.float16):
        out = np.nan_to_num(arr.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0)
        return np.clip(out, 0.0, 1.0), 16
    if np.issubdtype(arr.dtype, np.integer):
        return np.divide(np.clip(arr, 0, 65535), 65535, dtype=np.float32), 16
    raise ImageReadError(f"{name}: unsupported sample type {arr.dtype}")


def _decode_tiff_with_cv2(data: bytes, name: str, limit: int | None) -> Image:
    """A TIFF that Pillow cannot open (float samples...): OpenCV if it reads every sample in full."""
    tags = _formats.tiff_header_info(data)
    if tags is None or 256 not in tags or 257 not in tags:
        raise ImageReadError(f"{name}: not a readable TIFF file")
    _check_pixel_limit(name, int(tags[256]), int(tags[257]), limit)
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
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if channels == 3:
        arr = arr[:, :, ::-1]
    elif channels == 4:
        arr = arr[:, :, [2, 1, 0, 3]]
    pixels, depth = _samples_to_float(arr, name)
    orientation = tags.get(_ORIENTATION, 1)
    orientation = orientation if isinstance(orientation, int) and 1 <= orientation <= 8 else 1
    icc = tags.get(34675)
    return Image(
        np.ascontiguousarray(_apply_orientation(pixels, orientation)),
        depth,
        bytes(icc) if icc else None,
        None,
        "TIFF",
    )


def _srgb_profile() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _pil_to_array(pil: PILImage.Image, icc: bytes | None) -> tuple[np.ndarray, int, bytes | None]:
    """Normalise a loaded Pillow image: (float32 H×W×C, bit depth, ICC profile to keep)."""
    mode = pil.mode
    has_transparency = "transparency" in pil.info
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        arr = np.asarray(pil)
        return np.divide(arr, 65535, dtype=np.float32)[:, :, None], 16, icc
    if mode == "I":
        arr = np.clip(np.asarray(pil), 0, 65535)
        return np.divide(arr, 65535, dtype=np.float32)[:, :, None], 16, icc
    if mode == "F":
        arr = np.nan_to_num(np.asarray(pil, dtype=np.float32), nan=0.0, posinf=1.0, neginf=0.0)
        return np.clip(arr, 0.0, 1.0)[:, :, None], 16, icc
    if mode == "1":
        return np.asarray(pil, dtype=np.float32)[:, :, None], 8, icc

    if mode == "CMYK":
        pil, icc = _cmyk_to_rgb(pil, icc)
    elif mode == "LAB":
        transform = ImageCms.buildTransform(
            ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB"), "LAB", "RGB"
        )
        pil, icc = ImageCms.applyTransform(pil, transform), _srgb_profile()
    elif mode == "L" and has_transparency:
        pil = pil.convert("LA")
    elif mode in ("La",):
        pil = pil.convert("LA")
    elif mode in ("P", "PA"):
        rgba_palette = pil.palette is not None and pil.palette.mode == "RGBA"
        pil = pil.convert("RGBA" if has_transparency or rgba_palette or mode == "PA" else "RGB")
    elif mode == "RGB" and has_transparency:
        pil = pil.convert("RGBA")
    elif mode == "RGBa":
        pil = pil.convert("RGBA")
    elif mode in ("RGBX", "YCbCr", "HSV"):
        pil = pil.convert("RGB")
    elif mode not in ("L", "LA", "RGB", "RGBA"):
        pil = pil.convert("RGBA" if "A" in mode else "RGB")

    arr = np.asarray(pil)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return np.divide(arr, 255, dtype=np.float32), 8, icc


def _cmyk_to_rgb(pil: PILImage.Image, icc: bytes | None) -> tuple[PILImage.Image, bytes | None]:
    """CMYK to RGB: colour-managed to sRGB through the embedded profile when possible."""
    if icc and icc[16:20] == b"CMYK":
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
            converted = ImageCms.profileToProfile(
                pil, source, srgb, renderingIntent=ImageCms.Intent.PERCEPTUAL, outputMode="RGB"
            )
            if converted is not None:
                return converted, srgb.tobytes()
        except Exception as exc:  # noqa: BLE001 - fall back to the naive conversion below
            logger.warning("could not apply the CMYK ICC profile (%s); converting without it", _one_line(exc))
    return pil.convert("RGB"), None


# Orientation -> numpy transposition, the same as PIL.ImageOps.exif_transpose.
def _apply_orientation(arr: np.ndarray, orientation: int) -> np.ndarray:
    if orientation == 2:  # mirror horizontal
        return arr[:, ::-1]
    if orientation == 3:  # rotate 180
        return arr[::-1, ::-1]
    if orientation == 4:  # mirror vertical
        return arr[::-1]
    if orientation == 5:  # transpose
        return arr.transpose(1, 0, 2)
    if orientation == 6:  # rotate 90 clockwise to display
        return np.rot90(arr, -1)
    if orientation == 7:  # transverse
        return np.rot90(arr, 2).transpose(1, 0, 2)
    if orientation == 8:  # rotate 90 counter-clockwise to display
        return np.rot90(arr, 1)
    return arr


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


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
        raise ImageWriteError(
            f"{name}: cannot tell the output format from {what} (use .png, .jpg, .webp, .tiff or .bmp)"
        )
    return canonical


def _quantize(pixels: np.ndarray, depth: int) -> np.ndarray:
    """Clip to [0, 1] and round half up to 8 or 16 bits."""
    top = np.float32(255 if depth == 8 else 65535)
    scaled = np.nan_to_num(pixels, nan=0.0, posinf=1.0, neginf=0.0)  # a float32 copy
    np.clip(scaled, 0.0, 1.0, out=scaled)
    scaled *= top
    scaled += np.float32(0.5)
    np.floor(scaled, out=scaled)
    return scaled.astype(np.uint8 if depth == 8 else np.uint16)


def _icc_matches(icc: bytes, channels: int) -> bool:
    space = icc[16:20]
    return space == (b"GRAY" if channels in (1, 2) else b"RGB ")


def _exif_for_output(exif: bytes, name: str) -> bytes | None:
    """EXIF with the "Exif\\0\\0" prefix and Orientation 1; None (with a warning) if unreadable."""
    raw = exif if exif.startswith(_EXIF_PREFIX) else _EXIF_PREFIX + exif
    try:
        parsed = PILImage.Exif()
        parsed.load(raw)
        orientation = parsed.get(_ORIENTATION)
        if orientation is not None and orientation != 1:
            parsed[_ORIENTATION] = 1
            raw = parsed.tobytes()
    except Exception as exc:  # noqa: BLE001
        logger.warning("%s: not embedding unreadable EXIF data (%s)", name, _one_line(exc))
        return None
    return raw


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

    ``format`` (png, jpg/jpeg, webp, tif/tiff, bmp) defaults to the extension. ``quality`` (1..100)
    applies to JPEG (default 95, 4:4:4 chroma at 90 and above) and WebP (default 90; the compression
    effort when lossless). ``lossless`` selects lossless WebP; it is an error for JPEG. ``bit_depth``
    (8 or 16) overrides the image's; formats without 16-bit support get 8. ``strip_metadata`` drops
    the ICC profile and EXIF. The parent folder must exist. Failures raise :class:`ImageWriteError`.
    """
    name = os.fspath(path)
    fmt = resolve_output_format(path, format)
    depth = image.bit_depth if bit_depth is None else bit_depth
    if depth not in (8, 16):
        raise UsageError(f"bit depth must be 8 or 16, got {depth}")
    if quality is not None and not 1 <= quality <= 100:
        raise UsageError(f"quality must be between 1 and 100, got {quality}")
    if lossless and not format_supports_lossless(fmt):
        raise ImageWriteError(f"{name}: {fmt.upper()} cannot be saved losslessly; use PNG, WebP or TIFF")
    if not format_supports_16bit(fmt):
        depth = 8

    height, width = image.height, image.width
    if height == 0 or width == 0:
        raise ImageWriteError(f"{name}: cannot write an empty image ({width}x{height})")
    limit = _formats.MAX_DIMENSION[fmt]
    if max(width, height) > limit:
        raise ImageWriteError(
            f"{name}: {width}x{height} is too large for {fmt.upper()} (at most {limit} pixels a side)"
        )

    q = _quantize(image.pixels, depth)
    channels = q.shape[2]
    if channels in (2, 4) and not format_supports_alpha(fmt):
        if (q[:, :, -1] == np.iinfo(q.dtype).max).all():
            q = q[:, :, :-1]  # fully opaque: dropping the alpha loses nothing
        else:
            raise ImageWriteError(
                f"{name}: {fmt.upper()} cannot store transparency; remove the alpha channel first "
                f"or write PNG, WebP or TIFF"
            )
    if fmt == "webp" and q.shape[2] in (1, 2):
        q = np.concatenate([q[:, :, :1]] * 3 + ([q[:, :, 1:]] if q.shape[2] == 2 else []), axis=2)
    if fmt == "tiff" and depth == 16 and q.shape[2] == 2:
        q = q[:, :, [0, 0, 0, 1]]  # see jdsr_cli.io.formats: 16-bit gray + alpha TIFF as RGBA
    channels = q.shape[2]

    icc = exif = None
    if not strip_metadata and format_supports_metadata(fmt):
        icc = image.icc_profile or None
        if icc is not None and not _icc_matches(icc, channels):
            logger.warning(
                "%s: not embedding the ICC profile: its colour space %r does not match %s pixels",
                name,
                icc[16:20].decode("latin-1").strip(),
                "gray" if channels in (1, 2) else "RGB",
            )
            icc = None
        if image.exif:
            exif = _exif_for_output(image.exif, name)

    try:
        with atomic_open(path) as handle:
            if fmt == "png" and depth == 16:
                _formats.encode_png(handle, q, icc=icc, exif=exif)
            elif fmt == "tiff":
                _formats.encode_tiff(handle, q, icc=icc, exif=exif)
            else:
                _formats.encode_pillow(
                    handle, q, fmt, icc=icc, exif=exif, quality=quality, lossless=lossless
                )
    except OSError as exc:
        if exc.errno is None:  # Pillow reports encoder failures as OSError without errno
            raise ImageWriteError(f"{name}: cannot encode {fmt.upper()}: {_one_line(exc)}") from exc
        reason = exc.strerror or _one_line(exc)
        parent = Path(name).parent
        if isinstance(exc, NotADirectoryError) or (parent.exists() and not parent.is_dir()):
            reason = f"{parent} is not a folder"
        elif isinstance(exc, FileNotFoundError) and not parent.exists():
            reason = f"the folder {parent} does not exist"
        raise ImageWriteError(f"{name}: cannot write: {reason}") from exc
    except ImageWriteError:
        raise
    except Exception as exc:  # noqa: BLE001 - encoder failures of any kind become one-line errors
        raise ImageWriteError(f"{name}: cannot encode {fmt.upper()}: {_one_line(exc)}") from exc
