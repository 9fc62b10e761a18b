"""The in-memory image: float32 samples (or already quantized ones) plus what is needed to write it back."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

__all__ = ["Image"]


@dataclass
class Image:
    """An image as float32 samples in [0, 1] plus what is needed to write it back faithfully.

    ``pixels`` is H×W×C with C = 1 (gray), 2 (gray + alpha), 3 (RGB) or 4 (RGBA); a 2-D array is
    taken as H×W×1. uint8 and uint16 arrays are kept as *quantized* samples (``quantized_depth``): the
    writer stores them as they are, which spares a large upscale a float32 copy of its output; other
    dtypes are converted to float32. ``bit_depth`` (8 or 16) is the
    precision of the source, kept by default on output. ``exif`` is raw EXIF (starting with
    ``b"Exif\\0\\0"``) whose Orientation, if any, is 1: the pixels are already upright.
    ``warnings`` holds the decoder's one-line complaints about the source file (damaged data that
    was decoded anyway). It is never written; ``dataclasses.replace`` carries it to derived images.
    """

    pixels: np.ndarray
    bit_depth: int = 8
    icc_profile: bytes | None = None
    exif: bytes | None = None
    source_format: str | None = None
    warnings: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        pixels = np.asarray(self.pixels)
        if pixels.ndim == 2:
            pixels = pixels[:, :, None]
        if pixels.ndim != 3 or not 1 <= pixels.shape[2] <= 4:
            raise ValueError(f"pixels must be H×W×C with C in 1..4, got shape {pixels.shape}")
        if pixels.dtype not in (np.float32, np.uint8, np.uint16):
            pixels = pixels.astype(np.float32)
        self.pixels = pixels
        if self.bit_depth not in (8, 16):
            raise ValueError(f"bit_depth must be 8 or 16, got {self.bit_depth}")
        self.warnings = tuple(self.warnings)

    @property
    def quantized_depth(self) -> int | None:
        """8 or 16 when ``pixels`` hold integer samples, None for float32 in [0, 1]."""
        return {np.dtype(np.uint8): 8, np.dtype(np.uint16): 16}.get(self.pixels.dtype)

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
