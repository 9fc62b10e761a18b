"""BT.601 studio-range colour conversion (MATLAB rgb2ycbcr) and the grayscale rule."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from jdsr_cli.ops.color import (
    rgb_to_y,
    rgb_to_y_np,
    rgb_to_ycbcr,
    rgb_to_ycbcr_np,
    ycbcr_to_rgb,
    ycbcr_to_rgb_np,
)


def test_reference_colours() -> None:
    # black, white, red, green, blue as a 1×5 image, (3, 1, 5)
    rgb = torch.tensor([[[0, 1, 1, 0, 0]], [[0, 1, 0, 1, 0]], [[0, 1, 0, 0, 1]]], dtype=torch.float64)
    ycc = rgb_to_ycbcr(rgb) * 255
    expected = torch.tensor(
        [
            [[16.0, 235.0, 81.481, 144.553, 40.966]],
            [[128.0, 128.0, 90.203, 53.797, 240.0]],
            [[128.0, 128.0, 240.0, 34.214, 109.786]],
        ],
        dtype=torch.float64,
    )
    assert torch.allclose(ycc, expected, atol=1e-9)


def test_round_trip_and_batch_shapes() -> None:
    x = torch.rand(2, 3, 8, 9, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ycc = rgb_to_ycbcr(x)
    assert ycc.shape == x.shape
    assert torch.allclose(ycbcr_to_rgb(ycc), x, atol=1e-12)
    y = rgb_to_y(x)
    assert y.shape == (2, 1, 8, 9)
    assert torch.allclose(y, ycc[:, 0:1], atol=1e-15)
    h = rgb_to_y(x.half())
    assert h.dtype == torch.float16 and torch.allclose(h.double(), y, atol=1e-3)
    assert rgb_to_ycbcr(x.float()).dtype == torch.float32


def test_grayscale_rule() -> None:
    gray = torch.linspace(0, 1, 256, dtype=torch.float64).reshape(1, 16, 16)
    y = rgb_to_y(gray)
    assert torch.allclose(y, (16 + 219 * gray * 255 / 255) / 255, atol=1e-12)
    ycc = rgb_to_ycbcr(gray)
    assert torch.allclose(ycc[1:], torch.full_like(ycc[1:], 128 / 255), atol=1e-12)
    l8 = np.arange(256, dtype=np.uint8).reshape(16, 16)
    assert np.allclose(rgb_to_y_np(l8), 16 + 219 / 255 * l8.astype(np.float64), atol=1e-12)
    assert np.array_equal(rgb_to_y_np(l8), rgb_to_y_np(np.repeat(l8[..., None], 3, axis=2)))
    assert np.array_equal(rgb_to_y_np(l8), rgb_to_y_np(l8[..., None]))


def test_numpy_matches_torch_and_skimage() -> None:
    skcolor = pytest.importorskip("skimage.color")
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (7, 11, 3), dtype=np.uint8)
    y_np = rgb_to_y_np(img)
    t = torch.from_numpy(img.astype(np.float64) / 255).permute(2, 0, 1)
    assert np.allclose(y_np, rgb_to_y(t)[0].numpy() * 255, atol=1e-10)
    ref = skcolor.rgb2ycbcr(img)  # MATLAB's matrix, 0..255 output for uint8 input
    assert np.allclose(rgb_to_ycbcr_np(img), ref, atol=1e-9)
    assert np.allclose(y_np, ref[..., 0], atol=1e-9)
    assert np.allclose(ycbcr_to_rgb_np(rgb_to_ycbcr_np(img)), img, atol=1e-9)


def test_bad_shapes() -> None:
    with pytest.raises(ValueError):
        rgb_to_y(torch.rand(2, 4, 4))
    with pytest.raises(ValueError):
        rgb_to_y_np(np.zeros((4, 4, 2)))
