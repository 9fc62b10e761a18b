"""PSNR/SSIM under the literature's convention, cross-checked by hand and against scikit-image."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from jdsr_cli.ops.color import rgb_to_y_np
from jdsr_cli.ops.metrics import MetricConvention, gaussian_window_1d, psnr, ssim
from jdsr_cli.ops.resize import imresize, matlab_downscale_uint8, modcrop


def test_psnr_by_hand() -> None:
    hr = np.array([[10, 20, 30], [40, 50, 60], [70, 80, 90]], dtype=np.uint8)
    sr = hr.copy()
    sr[0, 0] = 13  # error 3
    sr[2, 1] = 76  # error -4
    mse = (9 + 16) / 9
    assert psnr(sr, hr, crop=0, y_channel=False) == pytest.approx(10 * math.log10(255**2 / mse), abs=1e-12)
    assert psnr(sr, hr, crop=1, y_channel=False) == float("inf")  # centre pixel only, identical
    # Y of a grayscale image: errors scaled by 219/255 (the BT.601 route)
    mse_y = mse * (219 / 255) ** 2
    assert psnr(sr, hr, crop=0) == pytest.approx(10 * math.log10(255**2 / mse_y), abs=1e-9)
    assert psnr(sr.astype(np.float64), hr, crop=0, y_channel=False, data_range=1.0) == pytest.approx(
        10 * math.log10(1 / mse), abs=1e-12
    )


def test_psnr_rgb_y_and_crop() -> None:
    rng = np.random.default_rng(0)
    hr = rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)
    sr = np.clip(hr.astype(int) + rng.integers(-5, 6, hr.shape), 0, 255).astype(np.uint8)
    y_sr, y_hr = rgb_to_y_np(sr)[2:-2, 2:-2], rgb_to_y_np(hr)[2:-2, 2:-2]
    expected = 10 * math.log10(255**2 / np.mean((y_sr - y_hr) ** 2))
    assert psnr(sr, hr, crop=2) == pytest.approx(expected, abs=1e-12)
    d = sr.astype(np.float64) - hr
    assert psnr(sr, hr, crop=0, y_channel=False) == pytest.approx(10 * math.log10(255**2 / np.mean(d**2)))
    with pytest.raises(ValueError):
        psnr(sr, hr[:-1], crop=2)
    with pytest.raises(ValueError):
        psnr(sr, hr, crop=10)


def test_identical_images() -> None:
    img = np.random.default_rng(1).integers(0, 256, (32, 30, 3), dtype=np.uint8)
    assert psnr(img, img, crop=4) == float("inf")
    assert ssim(img, img, crop=4) == 1.0
    assert ssim(img, img, crop=0, y_channel=False) == 1.0


def test_ssim_matches_direct_2d_formula() -> None:
    rng = np.random.default_rng(2)
    a = rng.uniform(0, 255, (17, 15))
    b = np.clip(a + rng.normal(0, 20, a.shape), 0, 255)
    w = np.outer(gaussian_window_1d(), gaussian_window_1d())
    assert w.sum() == pytest.approx(1.0, abs=1e-15)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    vals = []
    for i in range(a.shape[0] - 10):
        for j in range(a.shape[1] - 10):
            pa, pb = a[i : i + 11, j : j + 11], b[i : i + 11, j : j + 11]
            ma, mb = (w * pa).sum(), (w * pb).sum()
            va, vb = (w * pa * pa).sum() - ma**2, (w * pb * pb).sum() - mb**2
            cab = (w * pa * pb).sum() - ma * mb
            vals.append(((2 * ma * mb + c1) * (2 * cab + c2)) / ((ma**2 + mb**2 + c1) * (va + vb + c2)))
    assert ssim(b, a, crop=0, y_channel=False) == pytest.approx(float(np.mean(vals)), abs=1e-12)


def _degraded_pair(hr_full: np.ndarray, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """(SR, HR) uint8: MATLAB-bicubic down then float bicubic up, rounded like a real SR output."""
    hr = modcrop(hr_full, scale)
    lr = matlab_downscale_uint8(hr, scale)
    t = torch.from_numpy(lr.astype(np.float64) / 255)
    t = t.permute(2, 0, 1) if t.dim() == 3 else t
    up = imresize(t, size=hr.shape[:2]).clamp(0, 1)
    up = up.permute(1, 2, 0) if up.dim() == 3 else up
    sr = np.floor(up.numpy() * 255 + 0.5).astype(np.uint8)
    assert sr.shape == hr.shape
    return sr, hr


def _skimage_valid_ssim(a: np.ndarray, b: np.ndarray, channel_axis: int | None = None) -> float:
    metrics = pytest.importorskip("skimage.metrics")
    _, smap = metrics.structural_similarity(
        a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255,
        full=True, channel_axis=channel_axis,
    )
    return float(smap[5:-5, 5:-5].mean())  # skimage pads ('reflect'); the valid region is 5 px in


@pytest.mark.data
@pytest.mark.parametrize(
    ("dataset", "name", "scale"),
    [("Set5", "bird", 2), ("Set5", "woman", 3), ("Set5", "butterfly", 4), ("Set14", "bridge", 3)],
)
def test_ssim_matches_skimage_on_real_images(data_dir: Path, dataset: str, name: str, scale: int) -> None:
    hr_full = np.asarray(Image.open(data_dir / "benchmark" / dataset / "HR" / f"{name}.png"))
    sr, hr = _degraded_pair(hr_full, scale)
    c = scale
    ref_y = _skimage_valid_ssim(rgb_to_y_np(sr)[c:-c, c:-c], rgb_to_y_np(hr)[c:-c, c:-c])
    ours = ssim(sr, hr, crop=c)
    assert 0.5 < ours < 1.0
    assert ours == pytest.approx(ref_y, abs=1e-6)
    if sr.ndim == 3:
        ref_rgb = _skimage_valid_ssim(sr[c:-c, c:-c].astype(np.float64), hr[c:-c, c:-c].astype(np.float64), 2)
        assert ssim(sr, hr, crop=c, y_channel=False) == pytest.approx(ref_rgb, abs=1e-6)
    # PSNR on the same pair: plausible bicubic-baseline range, Y above RGB
    p = psnr(sr, hr, crop=c)
    assert 20 < p < 45
    if sr.ndim == 3:
        assert p > psnr(sr, hr, crop=c, y_channel=False)


def test_metric_convention() -> None:
    conv = MetricConvention.standard(4)
    assert conv == MetricConvention(y_channel=True, crop=4, rounding="uint8")
    assert conv.psnr_label == "PSNR-Y crop=4" and conv.ssim_label == "SSIM-Y crop=4"
    assert MetricConvention(y_channel=False, crop=0).label("PSNR") == "PSNR-RGB crop=0"
    assert MetricConvention(crop=2, rounding="none").label("SSIM") == "SSIM-Y crop=2 float"
    with pytest.raises(dataclasses.FrozenInstanceError):
        conv.crop = 3  # type: ignore[misc]
    with pytest.raises(ValueError):
        MetricConvention(rounding="nearest")  # type: ignore[arg-type]
    rng = np.random.default_rng(3)
    hr = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
    sr_f = np.clip(hr + rng.normal(0, 3, hr.shape), -2, 257)
    sr_8 = np.clip(np.floor(sr_f + 0.5), 0, 255).astype(np.uint8)
    assert conv.psnr(sr_f, hr) == psnr(sr_8, hr, crop=4)
    assert conv.ssim(sr_f, hr) == ssim(sr_8, hr, crop=4)
    raw = MetricConvention(crop=4, rounding="none")
    assert raw.psnr(sr_f, hr) == psnr(sr_f, hr, crop=4)
