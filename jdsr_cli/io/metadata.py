"""EXIF, ICC profile and orientation: what is kept on read and what is embedded on write.

The EXIF orientation is applied to the pixels on read (the transposition of
``PIL.ImageOps.exif_transpose``) and the kept EXIF says Orientation 1, so a written file is never
rotated twice. For a TIFF source the EXIF keeps the descriptive IFD0 tags and the Exif/GPS sub-IFDs,
not the tags that describe the TIFF layout. Unreadable EXIF is dropped (with a warning), never fatal.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from PIL import Image as PILImage

from jdsr_cli.errors import one_line  # noqa: F401 - re-exported for the io modules

__all__ = ["Metadata", "read_metadata", "tiff_exif", "apply_orientation", "exif_for_output", "icc_matches"]

logger = logging.getLogger(__name__)

ORIENTATION = 0x0112
EXIF_PREFIX = b"Exif\x00\x00"
#: IFD0 tags of an EXIF block that describe the picture (not its layout); copied to and from TIFF.
EXIF_IFD0_TAGS = frozenset({270, 271, 272, 305, 306, 315, 33432})
EXIF_SUB_IFDS = (0x8769, 0x8825)  # Exif, GPSInfo


@dataclass(frozen=True)
class Metadata:
    """What :func:`read_metadata` keeps; ``warning`` is set when the EXIF had to be dropped."""

    icc: bytes | None
    exif: bytes | None
    orientation: int
    warning: str | None = None


def _valid_orientation(value: object) -> int:
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def read_metadata(pil: PILImage.Image) -> Metadata:
    """ICC profile, EXIF (Orientation reset to 1) and the orientation to apply to the pixels."""
    icc = pil.info.get("icc_profile") or None
    try:
        exif = pil.getexif()
        orientation = _valid_orientation(exif.get(ORIENTATION, 1))
        raw_info = pil.info.get("exif") or None
        if pil.format == "TIFF":
            raw = tiff_exif(exif)
        elif len(exif) == 0:
            raw = None
        elif exif.get(ORIENTATION, 1) != 1 or raw_info is None:
            # Rebuilt by Pillow: to reset the orientation, or because the EXIF came from elsewhere
            # (e.g. a PNG "Raw profile type exif" text chunk).
            if ORIENTATION in exif:
                exif[ORIENTATION] = 1
            raw = exif.tobytes()
        else:
            raw = raw_info if raw_info.startswith(EXIF_PREFIX) else EXIF_PREFIX + raw_info
    except Exception as exc:  # noqa: BLE001 - broken EXIF is common; the pixels still count
        return Metadata(icc, None, 1, f"unreadable EXIF data dropped ({one_line(exc)})")
    return Metadata(icc, raw, orientation)


def tiff_exif(tiff_tags: PILImage.Exif) -> bytes | None:
    """EXIF for a TIFF source: its descriptive IFD0 tags and Exif/GPS sub-IFDs, Orientation 1."""
    out = PILImage.Exif()
    for tag in EXIF_IFD0_TAGS:
        if tag in tiff_tags:
            out[tag] = tiff_tags[tag]
    for tag in EXIF_SUB_IFDS:
        sub = tiff_tags.get_ifd(tag)
        if sub:
            out[tag] = dict(sub)
    if len(out) == 0:
        return None
    if ORIENTATION in tiff_tags:
        out[ORIENTATION] = 1
    return out.tobytes()


def orientation_from_tags(tags: dict[int, object]) -> int:
    """The orientation tag of a parsed TIFF IFD (1 when absent or invalid)."""
    return _valid_orientation(tags.get(ORIENTATION, 1))


def apply_orientation(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Turn H×W×C pixels upright for an EXIF orientation (the same as ``PIL.ImageOps.exif_transpose``)."""
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


def exif_for_output(exif: bytes, name: str) -> bytes | None:
    """EXIF with the "Exif\\0\\0" prefix and Orientation 1; None (with a logged warning) if unreadable."""
    raw = exif if exif.startswith(EXIF_PREFIX) else EXIF_PREFIX + exif
    try:
        parsed = PILImage.Exif()
        parsed.load(raw)
        orientation = parsed.get(ORIENTATION)
        if orientation is not None and orientation != 1:
            parsed[ORIENTATION] = 1
            raw = parsed.tobytes()
    except Exception as exc:  # noqa: BLE001
        logger.warning("%s: not embedding unreadable EXIF data (%s)", name, one_line(exc))
        return None
    return raw


def icc_matches(icc: bytes, channels: int) -> bool:
    """True if the profile's colour space fits the pixels (GRAY for 1-2 channels, RGB for 3-4)."""
    return icc[16:20] == (b"GRAY" if channels in (1, 2) else b"RGB ")
