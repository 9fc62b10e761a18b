"""Optional codecs: HEIC/HEIF through pillow-heif, AVIF through Pillow's own plugin.

Both are declared dependencies, but a Pillow built without AVIF or an environment without
pillow-heif must still read and write every other format, and say exactly what to install when a
file needs the missing codec. Registration is done once, on first use, after Pillow's own plugins
(so Pillow's AVIF plugin, not pillow-heif, opens AVIF files).
"""

from __future__ import annotations

import functools
import logging

from PIL import Image as PILImage
from PIL import features

__all__ = [
    "register_plugins",
    "heif_available",
    "avif_available",
    "sniff_isobmff_format",
    "writer_available",
    "missing_reader_message",
    "missing_writer_message",
]

logger = logging.getLogger(__name__)

_HEIF_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1", b"mif2"})
_AVIF_BRANDS = frozenset({b"avif", b"avis"})
_HOW_TO_GET = {
    "heic": "the pillow-heif package (pip install pillow-heif)",
    "avif": "Pillow 11.3 or newer built with AVIF (pip install -U pillow)",
}


@functools.cache
def register_plugins() -> bool:
    """Register pillow-heif's HEIF opener and saver once; True when it is available."""
    PILImage.init()  # Pillow's own plugins first: its AVIF plugin must win over any other
    try:
        import pillow_heif
    except ImportError:
        logger.debug("pillow-heif is not installed: HEIC/HEIF files cannot be read or written")
        return False
    # Thumbnails, depth maps and auxiliary images are never used: skip decoding them.
    pillow_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)
    return True


def heif_available() -> bool:
    """True if HEIC/HEIF can be read and written (pillow-heif with its HEVC encoder)."""
    if not register_plugins():
        return False
    import pillow_heif

    return bool(pillow_heif.libheif_info().get("HEIF"))


@functools.cache
def avif_available() -> bool:
    """True if this Pillow reads and writes AVIF."""
    return bool(features.check("avif"))


def sniff_isobmff_format(data: bytes) -> str | None:
    """"avif" or "heic" for an ISO-BMFF image file (by its ftyp brands), else None."""
    if data[4:8] != b"ftyp":
        return None
    size = int.from_bytes(data[:4], "big")
    brands = {data[8:12]} | {data[i : i + 4] for i in range(16, min(size, 64, len(data)) - 3, 4)}
    if brands & _AVIF_BRANDS:
        return "avif"
    if brands & _HEIF_BRANDS:
        return "heic"
    return None


def writer_available(fmt: str) -> bool:
    """True unless ``fmt`` (canonical) needs a codec this environment lacks."""
    if fmt == "heic":
        return heif_available()
    if fmt == "avif":
        return avif_available()
    return True


def missing_reader_message(data: bytes) -> str | None:
    """Why ``data`` cannot be opened when only a missing codec is to blame; else None."""
    kind = sniff_isobmff_format(data)
    if kind == "heic" and not register_plugins():
        return f"HEIC/HEIF image: reading it needs {_HOW_TO_GET['heic']}"
    if kind == "avif" and not avif_available():
        return f"AVIF image: reading it needs {_HOW_TO_GET['avif']}"
    return None


def missing_writer_message(fmt: str) -> str:
    """The reason and the remedy for an unavailable writer, for an ImageWriteError."""
    return f"writing {fmt.upper()} needs {_HOW_TO_GET.get(fmt, 'a codec this installation lacks')}"
