"""NIQE: the published MATLAB value on Set14 baboon, its parts checked by hand, and its behaviour on distortions."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from jdsr_cli.ops.metrics import MetricConvention
from jdsr_cli.ops.niqe import _aggd_fit, _nan_model, _pristine, imresize_half, niqe, niqe_features, niqe_luma
from jdsr_cli.ops.resize import imresize, matlab_downscale_uint8


def _rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


@pytest.mark.data
def test_baboon_reproduces_the_matlab_value(data_dir: Path) -> None:
    """MATLAB R2021a with the authors' niqe_release on the Y channel of BasicSR's tests/data/baboon.png gives
    5.72957338 (BasicSR's ``calculate_niqe`` docstring and README: "5.7296 for tests/data/baboon.png").
    That file is Set14 baboon cut to 480×492 (checked pixel for pixel); NIQE uses the top-left whole 96×96
    blocks, 480×480 of both, so the full Set14 file must give the same number. Tolerance 1e-5: float
    summation order only (we measure 5.7295739); the edge-replicating resize would give 5.7191, and
    unrounded Y 5.6333, so a wrong step fails here."""
    baboon = _rgb(data_dir / "benchmark" / "Set14" / "HR" / "baboon.png")
    assert baboon.shape == (480, 500, 3)
    assert niqe(baboon) == pytest.approx(5.72957338, abs=1e-5)
    assert niqe(baboon[:, :492]) == niqe(baboon)  # the 480×492 file BasicSR and MATLAB scored


def test_pristine_model_is_the_published_one() -> None:
    mu, cov = _pristine()
    assert mu.shape == (36,) and cov.shape == (36, 36)
    assert np.array_equal(cov, cov.T) and np.linalg.eigvalsh(cov).min() > 0
    # first values of mu_prisparam in the authors' modelparameters.mat
    assert mu[:4] == pytest.approx([2.60131368, 0.90570272, 0.81204778, 0.09042671], abs=1e-8)


def test_aggd_fit_recovers_known_shapes() -> None:
    """Moment matching on samples of known distributions: Gaussian α = 2, β = σ√2; Laplacian α = 1, β = b;
    half-Gaussians of scales 0.5 and 2 on either side (an AGGD with α = 2: P(x < 0) = βl / (βl + βr)) give the
    two one-sided scales."""
    rng = np.random.default_rng(0)
    n = 400_000
    gauss = rng.normal(0.0, 1.5, n)
    lap = rng.laplace(0.0, 0.7, n)
    half = np.abs(rng.normal(0.0, 1.0, n))
    asym = np.where(rng.random(n) < 0.5 / 2.5, -0.5 * half, 2.0 * half)
    alpha, bl, br = _aggd_fit(np.stack([gauss, lap, asym]))
    assert alpha[0] == pytest.approx(2.0, abs=0.03) and bl[0] == pytest.approx(1.5 * math.sqrt(2), rel=0.01)
    assert br[0] == pytest.approx(1.5 * math.sqrt(2), rel=0.01)
    assert alpha[1] == pytest.approx(1.0, abs=0.02) and (bl[1], br[1]) == pytest.approx((0.7, 0.7), rel=0.02)
    assert alpha[2] == pytest.approx(2.0, abs=0.03)
    assert (bl[2], br[2]) == pytest.approx((0.5 * math.sqrt(2), 2.0 * math.sqrt(2)), rel=0.01)
    # no negative values: βl is NaN (MATLAB's mean of an empty vector), α the table's first entry
    alpha, bl, br = _aggd_fit(np.abs(gauss)[None, :1000])
    assert math.isnan(bl[0]) and alpha[0] == pytest.approx(0.2)


def test_half_size_is_matlab_imresize_with_mirrored_border() -> None:
    """MATLAB ``imresize(x, 0.5)``: u = 2i − 0.5, kernel 0.5·cubic(0.5 t) over 10 taps from floor(u − 4),
    indices mirrored at the border (aux = [1:n, n:-1:1]); written out here for a small random image."""
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 255, (22, 30))

    def cubic(t: np.ndarray) -> np.ndarray:
        a = np.abs(t)
        return np.where(a <= 1, 1.5 * a**3 - 2.5 * a**2 + 1, np.where(a <= 2, -0.5 * a**3 + 2.5 * a**2 - 4 * a + 2, 0))

    def matrix(n: int) -> np.ndarray:
        m = np.zeros((n // 2, n))
        aux = np.r_[np.arange(n), np.arange(n)[::-1]]
        for i in range(1, n // 2 + 1):
            u = 2 * i - 0.5
            js = math.floor(u - 4) + np.arange(10)
            w = 0.5 * cubic(0.5 * (u - js))
            for j, wj in zip(js, w / w.sum(), strict=True):
                m[i - 1, aux[(j - 1) % (2 * n)]] += wj
        return m

    expected = matrix(22) @ x @ matrix(30).T
    assert imresize_half(x) == pytest.approx(expected, abs=1e-9)
    # away from the border it is the project's MATLAB imresize exactly as is
    plain = imresize(torch.from_numpy(x), scale=0.5).numpy()
    assert np.abs(imresize_half(x) - plain)[3:-3, 3:-3].max() < 1e-9


def test_luma_crop_and_sizes() -> None:
    rgb = np.zeros((100, 110, 3), np.uint8)
    rgb[..., 0] = 200  # Y = 16 + 65.481·200/255 = 67.357 → 67
    assert np.all(niqe_luma(rgb) == 67.0) and niqe_luma(rgb, crop=2).shape == (96, 106)
    gray = np.full((100, 100), 100, np.uint8)  # project rule: 16 + 219/255·100 = 101.88 → 102
    assert np.all(niqe_luma(gray) == 102.0)
    with pytest.raises(ValueError, match="96"):
        niqe(rgb, crop=3)
    with pytest.raises(ValueError, match="crop"):
        niqe(rgb, crop=-1)
    rng = np.random.default_rng(2)
    y = rng.uniform(0, 255, (200, 300))
    assert niqe_features(y).shape == (2 * 3, 36)  # 2×3 whole blocks, 18 features at each of 2 scales
    with pytest.raises(ValueError, match="luminance"):
        niqe_features(np.zeros((96, 96, 3)))


def test_nan_features_follow_nanmean_and_nancov() -> None:
    """Blocks whose fit has NaN (no negative or no positive value) count as MATLAB's nanmean (per feature) and
    nancov (complete rows only) count them; a single complete row gives a zero covariance."""
    f = np.array([[1.0, 2.0], [3.0, np.nan], [5.0, 4.0], [np.nan, 9.0]])
    mean, cov = _nan_model(f)
    assert mean == pytest.approx([3.0, 5.0])
    assert cov == pytest.approx(np.cov(np.array([[1.0, 2.0], [5.0, 4.0]]), rowvar=False))
    assert np.array_equal(_nan_model(f[:2])[1], np.zeros((2, 2)))


@pytest.mark.data
def test_distortions_raise_niqe(data_dir: Path) -> None:
    """Blur (bicubic ×4 down and up) and noise both make an image less natural: NIQE rises."""
    hr = _rgb(data_dir / "benchmark" / "Set14" / "HR" / "zebra.png")[:384, :576]
    lr = matlab_downscale_uint8(hr, 4)
    up = imresize(torch.from_numpy(lr.astype(np.float64)).permute(2, 0, 1), scale=4).permute(1, 2, 0).numpy()
    blurred = np.clip(np.floor(up + 0.5), 0, 255)
    noisy = np.clip(hr + np.random.default_rng(4).normal(0, 15, hr.shape), 0, 255).round()
    clean = niqe(hr)
    assert niqe(blurred) > clean + 1 and niqe(noisy) > clean + 1


def test_convention_niqe() -> None:
    rng = np.random.default_rng(5)
    sr_f = rng.uniform(-3, 258, (110, 120, 3))
    conv = MetricConvention.standard(4)
    assert conv.niqe_label == "NIQE-Y crop=4"
    assert conv.niqe(sr_f) == niqe(np.clip(np.floor(sr_f + 0.5), 0, 255).astype(np.uint8), crop=4)
    with pytest.raises(ValueError, match="luminance"):
        MetricConvention(y_channel=False).niqe(sr_f)
