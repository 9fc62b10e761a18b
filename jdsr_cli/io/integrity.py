"""Decoder warnings: damage a decoder works around silently, turned into one-line messages.

Pillow decodes some damaged files without a word: libjpeg's "corrupt JPEG data" warnings are
muted, a PNG's IDAT checksums are not checked, a GIF may lose its last frames. The checks here see
what the formats allow to be seen:

* PNG: every chunk's CRC, and the IEND chunk that ends the file.
* JPEG: libjpeg-turbo's own warnings (premature end of data segment, extraneous bytes, bad Huffman
  code...), from a second, cheap decode by simplejpeg at 1/8 scale (the entropy decoding, where the
  warnings arise, is complete at any scale).
* GIF: the trailer byte that ends the file. WebP: the size its RIFF header declares.
* Any format: the warnings Pillow itself emits while decoding (e.g. TIFF "Truncated File Read").

What no decoder can see is not caught: JPEG, GIF and WebP carry no checksum, so a changed byte that
still decodes to a valid stream gives different pixels and no warning.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import warnings
import zlib
from collections.abc import Iterator

__all__ = ["file_warnings", "capture_pillow_warnings", "png_warnings", "jpeg_warnings"]

logger = logging.getLogger(__name__)

_WARNINGS_LOCK = threading.RLock()
_MAX_CRC_REPORTS = 3


def _clean(message: str) -> str:
    """One line, lower-case start (libjpeg writes "Corrupt JPEG data: ...")."""
    text = " ".join(message.split())
    return text[:1].lower() + text[1:300]


def png_warnings(data: bytes) -> list[str]:
    """Bad chunk CRCs and a missing IEND; a chunk cut by the end of the file is reported once."""
    view = memoryview(data)
    pos, bad, seen_end = 8, [], False
    while pos + 8 <= len(data):
        length = int.from_bytes(view[pos : pos + 4], "big")
        kind = bytes(view[pos + 4 : pos + 8])
        end = pos + 12 + length
        if end > len(data):
            return [f"truncated PNG: the {kind.decode('latin-1')} chunk at byte {pos} runs past the end of the file"]
        expected = int.from_bytes(view[end - 4 : end], "big")
        if zlib.crc32(view[pos + 4 : end - 4]) != expected:
            bad.append(f"{kind.decode('latin-1')} at byte {pos}")
        pos = end
        if kind == b"IEND":
            seen_end = True
            break
    out = []
    if bad:
        more = f" and {len(bad) - _MAX_CRC_REPORTS} more" if len(bad) > _MAX_CRC_REPORTS else ""
        out.append(f"damaged PNG: bad CRC in chunk {', '.join(bad[:_MAX_CRC_REPORTS])}{more}")
    if not seen_end:
        out.append("truncated PNG: no IEND chunk (the end of the file is missing)")
    return out


def jpeg_warnings(data: bytes, mode: str) -> list[str]:
    """libjpeg-turbo's first warning about ``data`` (Pillow's decoder mutes them), or none."""
    try:
        import simplejpeg
    except ImportError:  # a declared dependency; without it JPEG damage goes unreported
        logger.debug("simplejpeg is not installed: libjpeg warnings are not checked")
        return []
    colorspace = "CMYK" if mode == "CMYK" else "GRAY"
    try:
        simplejpeg.decode_jpeg(data, colorspace=colorspace, min_factor=8, strict=True)
        return []
    except ValueError as strict_error:
        try:  # a warning, or an error only this checker has (e.g. a colour conversion it lacks)?
            simplejpeg.decode_jpeg(data, colorspace=colorspace, min_factor=8, strict=False)
        except ValueError:
            logger.debug("simplejpeg cannot check this JPEG: %s", strict_error)
            return []
        return [_clean(str(strict_error))]


def _gif_warnings(data: bytes) -> list[str]:
    if data.rstrip(b"\x00")[-1:] != b";":
        return ["truncated GIF: no trailer (the end of the file, maybe whole frames, is missing)"]
    return []


def _webp_warnings(data: bytes) -> list[str]:
    declared = int.from_bytes(data[4:8], "little") + 8 if data[:4] == b"RIFF" else len(data)
    if declared > len(data):
        return [f"truncated WebP: {declared - len(data):,} bytes of the {declared:,} its header declares are missing"]
    return []


def file_warnings(data: bytes, pil_format: str | None, mode: str) -> list[str]:
    """The format-specific checks above for a file Pillow decoded."""
    if pil_format == "PNG":
        return png_warnings(data)
    if pil_format in ("JPEG", "MPO"):
        return jpeg_warnings(data, mode)
    if pil_format == "GIF":
        return _gif_warnings(data)
    if pil_format == "WEBP":
        return _webp_warnings(data)
    return []


@contextlib.contextmanager
def capture_pillow_warnings() -> Iterator[list[str]]:
    """Collect the UserWarnings raised inside the block as one-line messages; re-emit the others.

    ``warnings.catch_warnings`` is process-wide, so blocks are serialised by a lock: decodes in
    threads of one process run one at a time (batches use processes, not threads).
    """
    collected: list[str] = []
    with _WARNINGS_LOCK:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield collected
        for item in caught:
            if issubclass(item.category, UserWarning):  # Pillow's words about the file
                collected.append(_clean(str(item.message)))
            else:
                warnings.warn_explicit(item.message, item.category, item.filename, item.lineno)
