"""Pillow modes to float32 arrays: which channels and which bit depth each source mode becomes.

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
I (32-bit int)     gray, 0..65535; refused if a sample is outside it                    16
F (32-bit float)   gray, clipped to [0, 1]; refused if it is on another scale (below)     16
=================  ==================================================================  =====

Float samples are read as 0..1, the convention of image editors. Overshoots from editing are clipped;
a float image that reaches past 1.5 or below -0.5 is on another scale (0..255 floats, HDR radiance) and
is refused with its range rather than turned white: no single rescaling is right for both. Integer
samples deeper than 16 bits are read as 0..65535 and refused, with their range, if one is outside it.

Sources deeper than 8 bits that Pillow would reduce (16-bit colour PNG/TIFF, 10/12-bit AVIF and
HEIC) are decoded by :mod:`jdsr_cli.io.highdepth` instead. A fully opaque alpha channel is kept:
dropping it is the caller's decision.
"""

from __future__ import annotations

import io
import logging

import numpy as np
from PIL import Image as PILImage
from PIL import ImageCms

from jdsr_cli.errors import ImageReadError
from jdsr_cli.io.metadata import one_line

__all__ = ["pil_to_array", "samples_to_float", "float_samples_to_unit", "GRAY16_MODES"]

logger = logging.getLogger(__name__)

#: Float samples past these are not a 0..1 image with editing overshoots but another scale.
FLOAT_SCALE_LIMITS = (-0.5, 1.5)

#: Pillow modes that already hold more than 8 bits per sample (gray only).
GRAY16_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I", "F"})


def _srgb_profile() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def float_samples_to_unit(arr: np.ndarray, name: str) -> np.ndarray:
    """Float samples as float32 in [0, 1]; a file on another scale is refused (see the module docstring)."""
    out = np.nan_to_num(arr.astype(np.float32, copy=False), nan=0.0, posinf=1.0, neginf=0.0)
    if out.size:
        low, high = float(out.min()), float(out.max())
        if low < FLOAT_SCALE_LIMITS[0] or high > FLOAT_SCALE_LIMITS[1]:
            raise ImageReadError(
                f"{name}: float samples run from {low:.4g} to {high:.4g}, not 0..1 (a 0..255 float or HDR "
                "image); rescale or tone-map it to 0..1, or save it as 8/16-bit"
            )
    return np.clip(out, 0.0, 1.0)


def _gray16(pil: PILImage.Image, name: str) -> np.ndarray:
    """I;16*, I and F modes as float32 H×W×1 in [0, 1]."""
    if pil.mode == "F":
        return float_samples_to_unit(np.asarray(pil, dtype=np.float32), name)[:, :, None]
    arr = np.asarray(pil)
    if pil.mode == "I":
        _check_16bit_range(arr, name)
    return np.divide(arr, 65535, dtype=np.float32)[:, :, None]


def _check_16bit_range(arr: np.ndarray, name: str) -> None:
    """Wider integers are read as 16-bit; clipping a 32-bit image would turn it white (or black) unseen."""
    if arr.size and (int(arr.min()) < 0 or int(arr.max()) > 65535):
        raise ImageReadError(
            f"{name}: integer samples run from {int(arr.min())} to {int(arr.max())}, not 0..65535; "
            "rescale it to 16 bits first"
        )


def _to_standard_mode(pil: PILImage.Image, icc: bytes | None) -> tuple[PILImage.Image, bytes | None]:
    """Convert any 8-bit mode to L, LA, RGB or RGBA (see the table); returns the ICC profile to keep."""
    mode = pil.mode
    has_transparency = "transparency" in pil.info
    if mode == "CMYK":
        return _cmyk_to_rgb(pil, icc)
    if mode == "LAB":
        transform = ImageCms.buildTransform(
            ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB"), "LAB", "RGB"
        )
        return ImageCms.applyTransform(pil, transform), _srgb_profile()
    if (mode == "L" and has_transparency) or mode == "La":
        return pil.convert("LA"), icc
    if mode in ("P", "PA"):
        rgba_palette = pil.palette is not None and pil.palette.mode == "RGBA"
        return pil.convert("RGBA" if has_transparency or rgba_palette or mode == "PA" else "RGB"), icc
    if (mode == "RGB" and has_transparency) or mode == "RGBa":
        return pil.convert("RGBA"), icc
    if mode in ("RGBX", "YCbCr", "HSV"):
        return pil.convert("RGB"), icc
    if mode not in ("L", "LA", "RGB", "RGBA"):
        return pil.convert("RGBA" if "A" in mode else "RGB"), icc
    return pil, icc


def pil_to_array(
    pil: PILImage.Image, icc: bytes | None, name: str = "image"
) -> tuple[np.ndarray, int, bytes | None]:
    """Normalise a loaded Pillow image: (float32 H×W×C, bit depth, ICC profile to keep)."""
    if pil.mode in GRAY16_MODES:
        return _gray16(pil, name), 16, icc
    if pil.mode == "1":
        return np.asarray(pil, dtype=np.float32)[:, :, None], 8, icc
    pil, icc = _to_standard_mode(pil, icc)
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
            logger.warning("could not apply the CMYK ICC profile (%s); converting without it", one_line(exc))
    return pil.convert("RGB"), None


def samples_to_float(arr: np.ndarray, name: str) -> tuple[np.ndarray, int]:
    """Integer or float samples (as OpenCV returns them) to float32 in [0, 1] and a bit depth."""
    if arr.dtype == np.uint8:
        return np.divide(arr, 255, dtype=np.float32), 8
    if arr.dtype == np.uint16:
        return np.divide(arr, 65535, dtype=np.float32), 16
    if arr.dtype in (np.float32, np.float64, np.float16):
        return float_samples_to_unit(arr, name), 16
    if np.issubdtype(arr.dtype, np.integer):
        _check_16bit_range(arr, name)
        return np.divide(arr, 65535, dtype=np.float32), 16
    raise ImageReadError(f"{name}: unsupported sample type {arr.dtype}")
