"""Shared helpers of the image IO tests: random samples, an independent (OpenCV) codec, EXIF blocks."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image as PILImage
from PIL import ImageCms

from jdsr_cli.io.image import Image

RNG = np.random.default_rng(1234)
SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def rand16(shape: tuple[int, ...]) -> np.ndarray:
    """uint16 samples that are mostly not multiples of 257, so an 8-bit detour would show."""
    arr = RNG.integers(0, 65536, shape, dtype=np.uint16)
    arr[arr % 257 == 0] += 1
    return arr


def rand8(shape: tuple[int, ...]) -> np.ndarray:
    return RNG.integers(0, 256, shape, dtype=np.uint8)


def cv2_write(path: Path, rgb16: np.ndarray) -> None:
    """Write RGB(A) or gray uint16 with OpenCV (an encoder independent of ours)."""
    arr = rgb16
    if arr.ndim == 3 and arr.shape[2] == 3:
        arr = arr[:, :, ::-1]
    elif arr.ndim == 3 and arr.shape[2] == 4:
        arr = arr[:, :, [2, 1, 0, 3]]
    ok, buf = cv2.imencode(path.suffix, arr)
    assert ok
    path.write_bytes(buf.tobytes())


def cv2_read(path: Path) -> np.ndarray:
    arr = cv2.imdecode(np.frombuffer(path.read_bytes(), np.uint8), cv2.IMREAD_UNCHANGED)
    if arr.ndim == 3 and arr.shape[2] == 3:
        arr = arr[:, :, ::-1]
    elif arr.ndim == 3 and arr.shape[2] == 4:
        arr = arr[:, :, [2, 1, 0, 3]]
    return arr


def as16(img: Image) -> np.ndarray:
    return np.floor(img.pixels * 65535 + 0.5).astype(np.uint16)


def as8(img: Image) -> np.ndarray:
    return np.floor(img.pixels * 255 + 0.5).astype(np.uint8)


def exif_bytes(orientation: int | None = None, **extra: object) -> bytes:
    exif = PILImage.Exif()
    exif[271] = "jdsr-camera"  # Make
    if orientation is not None:
        exif[0x0112] = orientation
    exif[0x8769] = {36867: "2021:02:03 04:05:06"}  # DateTimeOriginal in the Exif sub-IFD
    for key, value in extra.items():
        exif[int(key)] = value
    return exif.tobytes()


def parse_exif(raw: bytes | None) -> PILImage.Exif:
    assert raw is not None
    exif = PILImage.Exif()
    exif.load(raw)
    return exif
