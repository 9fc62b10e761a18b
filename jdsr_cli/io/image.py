"""The image IO API in one place: ``from jdsr_cli.io.image import Image, read_image, write_image``.

Each concept lives in its own module; this one only gathers the public names:

* :mod:`jdsr_cli.io.imagedata`: the :class:`Image` dataclass (float32 pixels + depth, ICC, EXIF, warnings).
* :mod:`jdsr_cli.io.reader`: :func:`read_image`, :func:`decode_image` (first frame; ``strict``).
* :mod:`jdsr_cli.io.animation`: every frame of GIF / APNG / WebP, and writing animations.
* :mod:`jdsr_cli.io.writer`: :func:`write_image`, :func:`resolve_output_format`.
* :mod:`jdsr_cli.io.formats`: format names, extensions and capabilities.
* :mod:`jdsr_cli.io.modes`, :mod:`~jdsr_cli.io.highdepth`, :mod:`~jdsr_cli.io.metadata`,
  :mod:`~jdsr_cli.io.integrity`, :mod:`~jdsr_cli.io.limits`: how decoding works in detail.
* :mod:`jdsr_cli.io.quantize`: the one float -> integer rounding rule.
"""

from __future__ import annotations

from jdsr_cli.io.formats import (
    INPUT_EXTENSIONS,
    OUTPUT_FORMATS,
    default_output_extension,
    format_supports_16bit,
    format_supports_alpha,
    format_supports_gray,
    format_supports_lossless,
    format_supports_metadata,
    normalize_format,
    output_extension,
)
from jdsr_cli.io.imagedata import Image
from jdsr_cli.io.quantize import quantize, to_uint8, to_uint16
from jdsr_cli.io.reader import decode_image, read_image
from jdsr_cli.io.writer import resolve_output_format, write_image

__all__ = [
    "Image",
    "read_image",
    "decode_image",
    "write_image",
    "resolve_output_format",
    "OUTPUT_FORMATS",
    "INPUT_EXTENSIONS",
    "output_extension",
    "default_output_extension",
    "format_supports_16bit",
    "format_supports_alpha",
    "format_supports_gray",
    "format_supports_lossless",
    "format_supports_metadata",
    "normalize_format",
    "quantize",
    "to_uint8",
    "to_uint16",
]
