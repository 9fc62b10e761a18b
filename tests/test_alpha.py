"""Colour bleeding into transparent pixels and uniform-alpha detection."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from jdsr_cli.ops.alpha import fill_transparent, is_constant


def _red_square(size: int = 32, lo: int = 10, hi: int = 22) -> tuple[np.ndarray, np.ndarray]:
    rgb = np.zeros((size, size, 3), np.float32)  # transparent pixels hold black, as usual
    alpha = np.zeros((size, size), np.float32)
    rgb[lo:hi, lo:hi] = (1.0, 0.0, 0.0)
    alpha[lo:hi, lo:hi] = 1.0
    return rgb, alpha


def _edge_colours(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Colours where the bicubic-upscaled alpha is visible but not opaque: the anti-aliased edge."""
    up_rgb = cv2.resize(rgb, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC)
    up_alpha = cv2.resize(alpha, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC)
    return up_rgb[(up_alpha > 0.02) & (up_alpha < 0.98)]


def test_transparent_pixels_become_red_and_opaque_untouched() -> None:
    rgb, alpha = _red_square()
    out = fill_transparent(rgb, alpha)
    assert out.dtype == np.float32 and out.shape == rgb.shape
    assert np.array_equal(out[alpha > 0], rgb[alpha > 0])
    assert np.allclose(out, (1.0, 0.0, 0.0))  # every transparent pixel, near or far, is red
    assert np.all(rgb[0, 0] == 0)  # the input is not modified


def test_no_dark_fringe_after_upscale() -> None:
    rgb, alpha = _red_square()
    before = _edge_colours(rgb, alpha)
    assert before[:, 0].min() < 0.5  # without filling, black bleeds into the edge
    after = _edge_colours(fill_transparent(rgb, alpha), alpha)
    assert after.size and after[:, 0].min() > 0.98 and np.abs(after[:, 1:]).max() < 0.02


def test_partial_alpha_kept_and_weighted() -> None:
    rgb = np.zeros((9, 9, 3), np.float32)
    alpha = np.zeros((9, 9), np.float32)
    rgb[4, 3] = (0.0, 1.0, 0.0)  # a faint, noisy edge pixel
    alpha[4, 3] = 0.01
    rgb[4, 4] = (1.0, 0.0, 0.0)
    alpha[4, 4] = 1.0
    out = fill_transparent(rgb, alpha)
    assert out[4, 3].tolist() == [0.0, 1.0, 0.0]  # partially transparent: unchanged
    neighbour = out[3, 3]  # next to both: mostly the opaque red, little of the faint green
    assert neighbour[0] > 0.95 and neighbour[1] < 0.05


def test_far_pixels_take_the_nearest_colour() -> None:
    rgb = np.zeros((8, 40, 3), np.float32)
    alpha = np.zeros((8, 40), np.float32)
    rgb[:, 0] = (1.0, 0.0, 0.0)
    alpha[:, 0] = 1.0
    rgb[:, -1] = (0.0, 0.0, 1.0)
    alpha[:, -1] = 1.0
    out = fill_transparent(rgb, alpha)
    assert np.allclose(out[:, 5], (1.0, 0.0, 0.0)) and np.allclose(out[:, 34], (0.0, 0.0, 1.0))
    assert np.isfinite(out).all()


def test_threshold_counts_near_zero_alpha_as_transparent() -> None:
    rgb, alpha = _red_square()
    alpha[0, 0] = 0.001
    rgb[0, 0] = (0.0, 0.0, 1.0)
    assert fill_transparent(rgb, alpha)[0, 0].tolist() == [0.0, 0.0, 1.0]
    assert np.allclose(fill_transparent(rgb, alpha, threshold=0.01)[0, 0], (1.0, 0.0, 0.0))


def test_gray_and_two_dimensional_colour() -> None:
    gray = np.zeros((6, 6, 1), np.float32)
    alpha = np.zeros((6, 6), np.float32)
    gray[2, 2] = 0.7
    alpha[2, 2] = 1.0
    out = fill_transparent(gray, alpha)
    assert out.shape == (6, 6, 1) and np.allclose(out, 0.7)
    flat = fill_transparent(gray[:, :, 0], alpha)
    assert flat.shape == (6, 6) and np.allclose(flat, 0.7)


def test_trivial_cases_return_input() -> None:
    rgb, _ = _red_square()
    transparent = np.zeros(rgb.shape[:2], np.float32)
    assert fill_transparent(rgb, transparent) is rgb
    opaque = np.ones(rgb.shape[:2], np.float32)
    assert fill_transparent(rgb, opaque) is rgb
    with pytest.raises(ValueError):
        fill_transparent(rgb, np.zeros((3, 3), np.float32))


def test_is_constant() -> None:
    assert is_constant(np.ones((4, 5), np.float32)) == 1.0
    assert is_constant(np.full((2, 2), 0.5, np.float32)) == 0.5
    varied = np.ones((4, 4), np.float32)
    varied[0, 0] = 0.999
    assert is_constant(varied) is None
    assert is_constant(varied, tolerance=0.01) == pytest.approx(1.0, abs=0.001)
    assert is_constant(np.zeros((0, 0), np.float32)) is None
