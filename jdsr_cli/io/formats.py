"""Image formats: names and aliases, file extensions, and what each output format can hold.

Capabilities (what a file written by :func:`jdsr_cli.io.writer.write_image` holds):

======  ======  ======  ===========  ==============  =============================================
format  16-bit  alpha   gray stays   metadata        encoder
======  ======  ======  ===========  ==============  =============================================
png     yes     yes     yes (L, LA)  ICC + EXIF      Pillow (8-bit), our own (16-bit)
tiff    yes     yes     yes (*)      ICC + EXIF      our own writer (deflate + predictor)
jpeg    no      no      yes (L)      ICC + EXIF      Pillow
webp    no      yes     no -> RGB    ICC + EXIF      Pillow
bmp     no      no      yes (L)      none            Pillow
gif     no      1-bit   no -> RGB    none            Pillow, 256-colour palette (exact if fewer)
heic    no      yes     no -> RGB    ICC + EXIF      pillow-heif (libheif, x265)
avif    no      yes     yes (L)      ICC + EXIF      Pillow's AVIF plugin (libavif)
======  ======  ======  ===========  ==============  =============================================

(*) 16-bit gray + alpha TIFF is written as 16-bit RGBA; see :mod:`jdsr_cli.io.tiff_codec`.
HEIC and AVIF are written at 8 bits (10/12-bit sources are read at 16 bits, but written at 8).
GIF alpha is on/off: samples below half opacity become transparent, the others opaque.
"""

from __future__ import annotations

from jdsr_cli.errors import UsageError
from jdsr_cli.io.plugins import missing_writer_message, writer_available

__all__ = [
    "OUTPUT_FORMATS",
    "INPUT_EXTENSIONS",
    "MAX_DIMENSION",
    "normalize_format",
    "format_from_path",
    "output_extension",
    "default_output_extension",
    "format_supports_16bit",
    "format_supports_alpha",
    "format_supports_gray",
    "format_supports_lossless",
    "format_supports_metadata",
]

#: Canonical names of the formats :func:`jdsr_cli.io.writer.write_image` can write.
OUTPUT_FORMATS: tuple[str, ...] = ("png", "jpeg", "webp", "tiff", "bmp", "gif", "heic", "avif")

#: Every accepted spelling (a ``--format`` value or a file extension) -> canonical format.
_ALIASES = {
    "png": "png",
    "apng": "png",
    "jpg": "jpeg",
    "jpeg": "jpeg",
    "jpe": "jpeg",
    "jfif": "jpeg",
    "webp": "webp",
    "tif": "tiff",
    "tiff": "tiff",
    "bmp": "bmp",
    "gif": "gif",
    "heic": "heic",
    "heif": "heic",
    "hif": "heic",
    "avif": "avif",
}

#: The extension an output gets for a canonical format, unless the spelling is kept (below).
_EXTENSION = {"png": "png", "jpeg": "jpg", "webp": "webp", "tiff": "tiff", "bmp": "bmp", "gif": "gif",
              "heic": "heic", "avif": "avif"}
_KEPT_SPELLINGS = frozenset({"heif"})  # --format heif writes .heif, not .heic

#: Extensions taken as images when a folder or a glob is searched for inputs (lower case, with the dot).
INPUT_EXTENSIONS: frozenset[str] = frozenset(f".{name}" for name in _ALIASES)

#: Largest width or height each format can store (the HEIC and AVIF encoders may refuse less).
MAX_DIMENSION = {"png": 2**31 - 1, "jpeg": 65_535, "webp": 16_383, "tiff": 2**32 - 1, "bmp": 2**31 - 1,
                 "gif": 65_535, "heic": 65_535, "avif": 65_535}

_SUPPORTS_16BIT = frozenset({"png", "tiff"})
_SUPPORTS_ALPHA = frozenset({"png", "webp", "tiff", "gif", "heic", "avif"})
_SUPPORTS_GRAY = frozenset({"png", "jpeg", "tiff", "bmp", "avif"})
_SUPPORTS_LOSSLESS = frozenset({"png", "webp", "tiff", "bmp"})
_SUPPORTS_METADATA = frozenset({"png", "jpeg", "webp", "tiff", "heic", "avif"})


def normalize_format(name: str) -> str | None:
    """Canonical output format for ``name`` ("JPG", ".tif", "heif"...), or None when unsupported."""
    return _ALIASES.get(name.strip().lower().lstrip("."))


def format_from_path(path: object) -> str | None:
    """Canonical output format for a file name's extension, or None when unknown or missing."""
    suffix = str(path).rsplit("/", 1)[-1].rsplit("\\", 1)[-1]
    if "." not in suffix:
        return None
    return normalize_format(suffix.rsplit(".", 1)[-1])


def output_extension(fmt: str | None) -> str | None:
    """The file extension (no dot) for a ``--format`` value; None keeps each input's extension.

    An unknown name, or a format whose encoder is not installed, is a :class:`UsageError`.
    """
    if fmt is None:
        return None
    spelling = fmt.strip().lower().lstrip(".")
    canonical = _ALIASES.get(spelling)
    if canonical is None:
        raise UsageError(f"--format {fmt!r}: choose png, jpg, webp, tiff, bmp, gif, heic or avif")
    if not writer_available(canonical):
        raise UsageError(f"--format {fmt!r}: {missing_writer_message(canonical)}")
    return spelling if spelling in _KEPT_SPELLINGS else _EXTENSION[canonical]


def default_output_extension(input_suffix: str) -> str:
    """The output extension (no dot) for an input: its own when we can write that format, else png.

    The spelling is kept (".JPG" -> "JPG"); a HEIC input stays HEIC only where the writer is installed.
    """
    ext = input_suffix.lstrip(".")
    canonical = normalize_format(ext) if ext else None
    return ext if canonical is not None and writer_available(canonical) else "png"


def _canonical(fmt: str) -> str:
    canonical = normalize_format(fmt)
    if canonical is None:
        raise ValueError(f"unknown image format {fmt!r} (known: {', '.join(OUTPUT_FORMATS)})")
    return canonical


def format_supports_16bit(fmt: str) -> bool:
    """True if ``fmt`` keeps 16 bits per sample (PNG, TIFF); other formats are written at 8 bits."""
    return _canonical(fmt) in _SUPPORTS_16BIT


def format_supports_alpha(fmt: str) -> bool:
    """True if ``fmt`` stores an alpha channel (GIF only on/off). JPEG and BMP do not."""
    return _canonical(fmt) in _SUPPORTS_ALPHA


def format_supports_gray(fmt: str) -> bool:
    """True if ``fmt`` stores a single gray channel; WebP, HEIC and GIF are written as RGB."""
    return _canonical(fmt) in _SUPPORTS_GRAY


def format_supports_lossless(fmt: str) -> bool:
    """True if ``fmt`` can be written without loss (WebP only with ``lossless=True``)."""
    return _canonical(fmt) in _SUPPORTS_LOSSLESS


def format_supports_metadata(fmt: str) -> bool:
    """True if an ICC profile and EXIF are embedded for ``fmt`` (not BMP, not GIF)."""
    return _canonical(fmt) in _SUPPORTS_METADATA
