"""Training pairs from a folder of HR images (MATLAB-bicubic LR) and the 8 dihedral views.

LR images are made once per image from the whole modcropped HR (downscaling a patch alone would differ
at the patch borders); training.dataset cuts the aligned LR/HR patches from the pairs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jdsr_cli.errors import ImageReadError
from jdsr_cli.io.formats import INPUT_EXTENSIONS
from jdsr_cli.io.image import read_image
from jdsr_cli.io.quantize import to_uint8
from jdsr_cli.ops.resize import matlab_downscale_uint8, modcrop


@dataclass(frozen=True)
class ImagePair:
    lr: np.ndarray  # h×w×3 uint8
    hr: np.ndarray  # (h·s)×(w·s)×3 uint8


@dataclass(frozen=True)
class Skipped:
    """An image left out and why: ``reason`` is the line the log shows, ``kind`` lets an all-skipped folder
    be summed up in one line ("3 unreadable, 1 smaller than one 32 px patch")."""

    path: Path
    kind: str  # "unreadable" | "small" | "unpaired"
    reason: str

    def __str__(self) -> str:
        return self.reason


def find_images(folder: Path) -> list[Path]:
    return sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.suffix.lower() in INPUT_EXTENSIONS)


def make_pair(hr_rgb: np.ndarray, scale: int) -> ImagePair:
    """Modcrop an H×W×3 uint8 HR image and pair it with its MATLAB-bicubic LR (at scale 1, the image itself)."""
    if scale == 1:
        return ImagePair(hr_rgb, hr_rgb)
    hr = modcrop(hr_rgb, scale)
    return ImagePair(matlab_downscale_uint8(hr, scale), hr)


def load_pairs(paths: list[Path], scale: int, min_lr_side: int) -> tuple[list[ImagePair], list[Skipped]]:
    """Decode and pair every readable image big enough for a patch; returns (pairs, skipped reasons)."""
    pairs: list[ImagePair] = []
    skipped: list[Skipped] = []
    for path in paths:
        try:
            image = read_image(path, strict=True)  # damaged pixels would be learned: left out, named
        except ImageReadError as error:
            skipped.append(Skipped(path, "unreadable", str(error)))
            continue
        rgb = image.color
        if rgb.shape[2] == 1:
            rgb = np.repeat(rgb, 3, axis=2)
        hr = to_uint8(rgb)
        if min(hr.shape[:2]) // scale < min_lr_side:
            skipped.append(Skipped(path, "small", f"{path}: smaller than one training patch"))
            continue
        pairs.append(make_pair(hr, scale))
    return pairs, skipped


def dihedral(image: np.ndarray, view: int) -> np.ndarray:
    """One of the 8 flips/rotations of an H×W×C array (view 0 is the identity)."""
    if view & 4:
        image = image.transpose(1, 0, 2)
    if view & 2:
        image = image[::-1]
    if view & 1:
        image = image[:, ::-1]
    return image
