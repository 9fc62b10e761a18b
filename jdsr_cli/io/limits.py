"""The decompression-bomb limit: how many pixels a decode may produce, counted over all frames.

Pillow's limit (``PIL.Image.MAX_IMAGE_PIXELS``, about 89.5 million by default) stays the default, but
it is a hard limit here (Pillow only warns below twice the limit), it is applied by us with a
message that says how to raise it, and ``max_pixels`` sets it for one call (0: no limit) without
touching the global, which other code may rely on.
"""

from __future__ import annotations

import io
import threading

from PIL import Image as PILImage
from PIL import UnidentifiedImageError

from jdsr_cli.errors import ImageReadError
from jdsr_cli.io.metadata import one_line
from jdsr_cli.io.plugins import missing_reader_message, register_plugins

__all__ = ["resolve_limit", "check_pixel_limit", "open_pil", "REFUSED_FORMATS"]

#: Pillow formats never opened: EPS would run Ghostscript on untrusted input.
REFUSED_FORMATS = frozenset({"EPS"})
_PIL_LIMIT_LOCK = threading.Lock()


def resolve_limit(max_pixels: int | None) -> int | None:
    """The limit to apply: Pillow's default for None, none for 0, else ``max_pixels``."""
    if max_pixels is not None and max_pixels < 0:
        raise ValueError(f"max_pixels must be positive or 0 (no limit), got {max_pixels}")
    if max_pixels is None:
        return PILImage.MAX_IMAGE_PIXELS
    return max_pixels or None


def check_pixel_limit(name: str, width: int, height: int, limit: int | None, frames: int = 1) -> None:
    """ImageReadError when ``frames`` frames of width×height exceed ``limit`` (None: no limit)."""
    total = width * height * frames
    if limit is None or total <= limit:
        return
    what = f"{width}x{height}" if frames == 1 else f"{frames} frames of {width}x{height}"
    raise ImageReadError(
        f"{name}: {what} = {total:,} pixels exceeds the decompression-bomb limit "
        f"of {limit:,} pixels; if you trust this file, raise it with --max-pixels {total}"
    )


def open_pil(data: bytes, name: str) -> PILImage.Image | None:
    """Open ``data`` lazily with Pillow, its own bomb check off (ours applies); None for an odd TIFF.

    None means "a TIFF layout Pillow cannot open" (float RGB...), left to the OpenCV fallback.
    """
    register_plugins()
    PILImage.init()
    formats = [fmt for fmt in PILImage.OPEN if fmt not in REFUSED_FORMATS]
    with _PIL_LIMIT_LOCK:
        default_limit = PILImage.MAX_IMAGE_PIXELS
        PILImage.MAX_IMAGE_PIXELS = None  # checked by us, with our limit and message
        try:
            return PILImage.open(io.BytesIO(data), formats=formats)
        except UnidentifiedImageError:
            if data[:4] in (b"II*\x00", b"MM\x00*"):
                return None
            missing = missing_reader_message(data)
            raise ImageReadError(f"{name}: {missing or 'not a recognised image format (or corrupt header)'}") from None
        except Exception as exc:  # noqa: BLE001
            raise ImageReadError(f"{name}: corrupt image header ({one_line(exc)})") from exc
        finally:
            PILImage.MAX_IMAGE_PIXELS = default_limit
