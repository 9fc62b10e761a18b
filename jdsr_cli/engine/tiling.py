"""Tile planning and seam-free blending.

Tiles are evenly sized (a 1200 px side with a 512 px limit becomes three ~424 px tiles, not
512 + 512 + 176), overlap by at least ``overlap`` input pixels, and are merged with a raised-cosine
ramp across each actual overlap, so two neighbours' weights sum to one and no seam is left.
Every tile of a plan has the same size, so tiles batch without padding.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Tile:
    """A tile in input coordinates and the overlap it shares with each neighbour (0 at image borders)."""

    y: int
    x: int
    height: int
    width: int
    overlap_top: int
    overlap_bottom: int
    overlap_left: int
    overlap_right: int


def _axis_plan(length: int, tile: int, overlap: int, multiple_of: int) -> tuple[int, list[int]]:
    """Return the common tile length and the start offsets along one axis."""
    if length <= tile:
        return length, [0]
    overlap = min(overlap, tile // 2)
    count = math.ceil((length - overlap) / (tile - overlap))
    size = math.ceil((length + (count - 1) * overlap) / count)
    size = min(length, math.ceil(size / multiple_of) * multiple_of)
    if count == 1:
        return size, [0]
    span = length - size
    starts = [round(i * span / (count - 1)) for i in range(count)]
    return size, starts


def plan_tiles(height: int, width: int, tile: int, overlap: int, multiple_of: int = 1) -> list[Tile]:
    """Cover a ``height``×``width`` image with equal tiles of at most ``tile`` px (rounded to ``multiple_of``)."""
    if tile < 1:
        raise ValueError("tile size must be positive")
    tile_h, ys = _axis_plan(height, tile, overlap, multiple_of)
    tile_w, xs = _axis_plan(width, tile, overlap, multiple_of)
    tiles = []
    for iy, y in enumerate(ys):
        top = ys[iy - 1] + tile_h - y if iy > 0 else 0
        bottom = y + tile_h - ys[iy + 1] if iy + 1 < len(ys) else 0
        for ix, x in enumerate(xs):
            left = xs[ix - 1] + tile_w - x if ix > 0 else 0
            right = x + tile_w - xs[ix + 1] if ix + 1 < len(xs) else 0
            tiles.append(Tile(y, x, tile_h, tile_w, top, bottom, left, right))
    return tiles


def _ramp(length: int, start_overlap: int, end_overlap: int) -> np.ndarray:
    """1-D weights: 0 → 1 across ``start_overlap`` samples and 1 → 0 across ``end_overlap``.

    The outer quarter of each overlap gets weight 0 (those samples sit nearest the tile edge, where the
    network saw padding instead of image), the middle half a raised-cosine ramp. The neighbour's ramp
    over the same samples is the mirror image, so the weights of two neighbours sum to exactly one.
    """
    weights = np.ones(length, dtype=np.float32)
    if start_overlap > 0:
        weights[:start_overlap] = _rise(start_overlap)
    if end_overlap > 0:
        weights[length - end_overlap :] *= _rise(end_overlap)[::-1]
    return weights


def _rise(overlap: int) -> np.ndarray:
    margin = overlap // 4
    ramp_len = overlap - 2 * margin
    t = (np.arange(ramp_len, dtype=np.float32) + 0.5) / ramp_len
    return np.concatenate(
        [np.zeros(margin, np.float32), np.sin(t * np.pi / 2) ** 2, np.ones(margin, np.float32)]
    )


def blend_weights(tile: Tile, scale: int) -> np.ndarray:
    """The (height·scale)×(width·scale) weight map of a tile's output."""
    wy = _ramp(tile.height * scale, tile.overlap_top * scale, tile.overlap_bottom * scale)
    wx = _ramp(tile.width * scale, tile.overlap_left * scale, tile.overlap_right * scale)
    return np.outer(wy, wx)


Finish = Callable[[np.ndarray], np.ndarray]  # blended float rows -> the output's samples (clip, quantize...)


class TileAccumulator:
    """Blends tile outputs band by band into ``out``, so only one band of tile rows is ever held in float32.

    Tiles must arrive in plan order (row by row, top to bottom): when a tile starts below the band's top, the
    rows above it are final (no later tile reaches them), so they are divided by their weight, passed through
    ``finish`` (default: clip to [0, 1]) and written into ``out`` (default: a float32 image), and the band
    moves down. Peak host memory is ``out`` plus about two tile rows of float32 sums and weights, not a
    float32 copy of the whole output: a 12 MP photo ×4 to uint8 stays near the output's own size.
    """

    def __init__(self, height: int, width: int, channels: int, scale: int, *, out: np.ndarray | None = None,
                 finish: Finish | None = None) -> None:
        self.scale = scale
        shape = (height * scale, width * scale, channels)
        self.out = np.empty(shape, dtype=np.float32) if out is None else out
        if self.out.shape != shape:
            raise ValueError(f"out is {self.out.shape}, the blended image is {shape}")
        self.finish = finish or _clip01
        self._top = 0  # output row of the band's first row
        self._sum = np.zeros((0, shape[1], channels), dtype=np.float32)
        self._weight = np.zeros((0, shape[1], 1), dtype=np.float32)
        # A plan's tiles share one size, so only a few overlap patterns recur (corners, edges, inside).
        self._maps: dict[tuple[int, ...], np.ndarray] = {}

    def add(self, tile: Tile, output: np.ndarray) -> None:
        """Add one tile's H×W×C output (already at output scale)."""
        s = self.scale
        top, bottom = tile.y * s, (tile.y + tile.height) * s
        if top < self._top:
            raise ValueError(f"tile at row {tile.y} arrived after the band moved past it (tiles must come in plan order)")
        self._finish_rows_above(top)
        self._extend_to(bottom)
        key = (tile.height, tile.width, tile.overlap_top, tile.overlap_bottom, tile.overlap_left, tile.overlap_right)
        weights = self._maps.get(key)
        if weights is None:
            weights = self._maps[key] = blend_weights(tile, s)[:, :, None]
        rows = slice(top - self._top, bottom - self._top)
        cols = slice(tile.x * s, (tile.x + tile.width) * s)
        self._sum[rows, cols] += output * weights
        self._weight[rows, cols] += weights

    def result(self) -> np.ndarray:
        """The blended image (``out``), every row finished."""
        self._finish_rows_above(self._top + len(self._sum))
        return self.out

    def _finish_rows_above(self, row: int) -> None:
        done = row - self._top
        if done <= 0:
            return
        blended = np.divide(self._sum[:done], np.maximum(self._weight[:done], 1e-12))
        self.out[self._top:row] = self.finish(blended)
        self._sum, self._weight = self._sum[done:].copy(), self._weight[done:].copy()
        self._top = row

    def _extend_to(self, row: int) -> None:
        missing = row - (self._top + len(self._sum))
        if missing > 0:
            width, channels = self._sum.shape[1], self._sum.shape[2]
            self._sum = np.concatenate([self._sum, np.zeros((missing, width, channels), np.float32)])
            self._weight = np.concatenate([self._weight, np.zeros((missing, width, 1), np.float32)])


def _clip01(rows: np.ndarray) -> np.ndarray:
    return np.clip(rows, 0.0, 1.0, out=rows)
