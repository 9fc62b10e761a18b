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

    @property
    def alone(self) -> bool:
        """No other tile overlaps this one (the whole image, or abutting tiles): its output is final as it is."""
        return not (self.overlap_top or self.overlap_bottom or self.overlap_left or self.overlap_right)


def _axis_plan(length: int, tile: int, overlap: int, multiple_of: int) -> tuple[int, list[int]]:
    """Return the common tile length and the start offsets along one axis.

    Only neighbours overlap (tile i + 2 starts at or after tile i's end): the blending streams each finished
    pixel out and keeps just the last overlap. A plan that rounding would break gets a smaller overlap, and
    an axis too short for that even without overlap is one tile.
    """
    if length <= tile:
        return length, [0]
    tile = max(multiple_of, tile // multiple_of * multiple_of)
    for shared in range(min(overlap, tile // 2), -1, -1):
        size, starts = _spread(length, tile, shared, multiple_of)
        if all(later >= start + size for start, later in zip(starts, starts[2:], strict=False)):
            return size, starts
    return length, [0]


def _spread(length: int, tile: int, overlap: int, multiple_of: int) -> tuple[int, list[int]]:
    """Equal tiles of at most ``tile`` px overlapping by at least ``overlap``, spread evenly over ``length``."""
    count = math.ceil((length - overlap) / (tile - overlap))
    size = math.ceil((length + (count - 1) * overlap) / count)
    size = min(length, math.ceil(size / multiple_of) * multiple_of)
    if count == 1:
        return size, [0]
    span = length - size
    return size, [round(i * span / (count - 1)) for i in range(count)]


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


def blend_ramps(tile: Tile, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """The row and column ramps whose outer product is a tile's weight map."""
    wy = _ramp(tile.height * scale, tile.overlap_top * scale, tile.overlap_bottom * scale)
    wx = _ramp(tile.width * scale, tile.overlap_left * scale, tile.overlap_right * scale)
    return wy, wx


def blend_weights(tile: Tile, scale: int) -> np.ndarray:
    """The (height·scale)×(width·scale) weight map of a tile's output."""
    return np.outer(*blend_ramps(tile, scale))


Finish = Callable[[np.ndarray], np.ndarray]  # blended float rows -> the output's samples (clip, quantize...)


class TileAccumulator:
    """Blends tile outputs into ``out`` and finishes every pixel as soon as no later tile reaches it.

    Tiles must arrive in plan order (row by row, left to right). A tile's weighted output, plus what earlier
    tiles left for the pixels it shares with them, is final except where the next tile of its row (its right
    overlap) or the next row (its bottom overlap) still reaches: the final part is divided by its weight, passed
    through ``finish`` (default: clip to [0, 1]) and written into ``out`` (default: a float32 image); the right
    overlap is carried to the next tile, the bottom overlap kept in a full-width strip for the next row. So
    beside ``out`` only one strip of overlap rows is held in float32, whatever the tile height (issue 16: a
    12 MP photo ×4 to uint8 within 1.5× the output; a band of whole tile rows was 1 GB at 1024 px tiles).
    """

    def __init__(self, height: int, width: int, channels: int, scale: int, *, out: np.ndarray | None = None,
                 finish: Finish | None = None) -> None:
        self.scale = scale
        self.channels = channels
        shape = (height * scale, width * scale, channels)
        self.out = np.empty(shape, dtype=np.float32) if out is None else out
        if self.out.shape != shape:
            raise ValueError(f"out is {self.out.shape}, the blended image is {shape}")
        self.finish = finish  # None: clip to [0, 1] straight into out
        self._row_top = -1  # output row where the current tile row starts
        self._next_col = 0  # output column where the next tile of this row must start
        # Weighted sums and weights (channels + 1) of pixels later tiles still reach: the strip of rows the
        # next tile row shares with this one, and the columns the next tile shares with the last one.
        self._above: np.ndarray | None = None  # the previous row's strip, consumed left to right by this row
        self._above_col = 0  # columns of _above already taken by a tile of this row
        self._below: np.ndarray | None = None  # this row's strip, being filled for the next row
        self._carry: np.ndarray | None = None

    @property
    def held_rows(self) -> int:
        """Rows of the full-width float32 strips held now (the bottom overlaps of the last tile rows)."""
        return sum(len(strip) for strip in (self._above, self._below) if strip is not None)

    def add(self, tile: Tile, output: np.ndarray) -> None:
        """Add one tile's H×W×C output (already at output scale)."""
        s = self.scale
        top, left, right = tile.y * s, tile.x * s, (tile.x + tile.width) * s
        if top != self._row_top:
            self._start_row(tile, top)
        if left != self._next_col:
            raise _out_of_order(tile)
        if tile.alone:  # weights are one and no other tile reaches these pixels
            self._store(top, left, output)
            self._next_col = right
            return
        acc = self._weighted(tile, output)
        if self._above is not None:  # what the previous row left for these rows, for columns no tile took yet
            start = self._above_col
            acc[: len(self._above), start - left :] += self._above[:, start:right]
            self._above_col = right
        if self._carry is not None:  # what the previous tile of this row left for its right overlap
            acc[:, : self._carry.shape[1]] += self._carry
        final_rows, final_cols = (tile.height - tile.overlap_bottom) * s, (tile.width - tile.overlap_right) * s
        self._write(top, left, acc[:final_rows, :final_cols])
        self._carry = acc[:, final_cols:].copy() if final_cols < acc.shape[1] else None
        if final_rows < acc.shape[0]:
            if self._below is None:
                self._below = np.empty((acc.shape[0] - final_rows, self.out.shape[1], self.channels + 1), np.float32)
            self._below[:, left : left + final_cols] = acc[final_rows:, :final_cols]
        self._next_col = left + final_cols

    def result(self) -> np.ndarray:
        """The blended image (``out``), every pixel finished."""
        if self._carry is not None or self._below is not None or self._next_col not in (0, self.out.shape[1]):
            raise ValueError("the plan's last tiles are missing: the blended image is not finished")
        return self.out

    def _start_row(self, tile: Tile, top: int) -> None:
        """A new tile row: the strip the last row filled is what this one must add (it starts where it starts)."""
        if top < self._row_top or self._next_col not in (0, self.out.shape[1]) or self._carry is not None:
            raise _out_of_order(tile)
        self._above, self._below, self._above_col = self._below, None, 0
        self._row_top, self._next_col = top, 0
        if (0 if self._above is None else len(self._above)) != tile.overlap_top * self.scale:
            raise ValueError(f"tile at ({tile.y}, {tile.x}) does not continue the previous tile row (plan order)")

    def _weighted(self, tile: Tile, output: np.ndarray) -> np.ndarray:
        """The tile's weighted output and its weights, as one (H, W, C + 1) float32 array (weights made in place)."""
        wy, wx = blend_ramps(tile, self.scale)
        acc = np.empty(output.shape[:2] + (self.channels + 1,), np.float32)
        weights = acc[..., self.channels :]
        np.multiply(wy[:, None, None], wx[None, :, None], out=weights)
        np.multiply(output, weights, out=acc[..., : self.channels])
        return acc

    def _write(self, top: int, left: int, block: np.ndarray) -> None:
        """Finish a block of (sums, weight) pixels that no later tile reaches into ``out``."""
        if block.size == 0:
            return
        sums, weights = block[..., : self.channels], block[..., self.channels :]
        np.divide(sums, np.maximum(weights, 1e-12, out=weights), out=sums)
        self._store(top, left, sums)

    def _store(self, top: int, left: int, samples: np.ndarray) -> None:
        """Finish final samples into ``out`` without modifying ``samples`` (they may be the caller's tile)."""
        target = self.out[top : top + samples.shape[0], left : left + samples.shape[1]]
        if self.finish is None:
            np.clip(samples, 0.0, 1.0, out=target)
        else:
            target[...] = self.finish(samples)


def _out_of_order(tile: Tile) -> ValueError:
    return ValueError(f"tile at ({tile.y}, {tile.x}) arrived out of plan order (tiles must come row by row, left to right)")

