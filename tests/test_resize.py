"""MATLAB-compatible imresize: bit-exact oracles from the benchmark LR files, shapes, devices."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from jdsr_cli.ops.resize import imresize, matlab_downscale_uint8, modcrop, output_size, resize_float

SET5 = ["baby", "bird", "butterfly", "head", "woman"]
SET14 = [
    "baboon", "barbara", "bridge", "coastguard", "comic", "face", "flowers",
    "foreman", "lenna", "man", "monarch", "pepper", "ppt3", "zebra",
]
CASES = [
    (s, name, scale)
    for s, names in (("Set5", SET5), ("Set14", SET14))
    for name in names
    for scale in (2, 3, 4)
]


def _load(p: Path) -> np.ndarray:
    return np.asarray(Image.open(p))


@pytest.mark.data
@pytest.mark.parametrize(("dataset", "name", "scale"), CASES, ids=[f"{d}-{n}-x{s}" for d, n, s in CASES])
def test_matlab_downscale_matches_stored_lr(data_dir: Path, dataset: str, name: str, scale: int) -> None:
    root = data_dir / "benchmark" / dataset
    hr = modcrop(_load(root / "HR" / f"{name}.png"), scale)
    lr = _load(root / "LR_bicubic" / f"X{scale}" / f"{name}x{scale}.png")
    out = matlab_downscale_uint8(hr, scale)
    assert out.dtype == np.uint8
    assert out.shape == lr.shape
    assert int(np.abs(out.astype(np.int16) - lr.astype(np.int16)).max()) == 0


@pytest.mark.data
@pytest.mark.parametrize("scale", [0.5, 0.25, 2.0])
def test_float_path_within_one_level_of_quantised(data_dir: Path, scale: float) -> None:
    hr = modcrop(_load(data_dir / "benchmark" / "Set5" / "HR" / "butterfly.png"), 4)
    t = torch.from_numpy(hr.copy()).permute(2, 0, 1)
    q = imresize(t, scale=scale, quantize=True).to(torch.int16)
    oh, ow = q.shape[-2:]

    def to8(v: torch.Tensor) -> torch.Tensor:
        return torch.floor(v.clamp(0, 1) * 255.0 + 0.5).to(torch.int16)

    # Rounding alone (the float pipeline also saturating between passes) moves no pixel by > 1 level.
    mid = imresize(t.to(torch.float64) / 255.0, size=(oh, t.shape[-1])).clamp(0, 1)
    assert int((q - to8(imresize(mid, size=(oh, ow)))).abs().max()) <= 1
    # The plain float path skips MATLAB's uint8 saturation after the first pass, which can move a
    # handful of pixels next to overshooting edges by a few levels; everything else within 1.
    d = (q - to8(imresize(t.to(torch.float64) / 255.0, scale=scale))).abs()
    assert float((d <= 1).to(torch.float64).mean()) > 0.999
    assert int(d.max()) <= 8


def test_quantize_accepts_uint8_and_float_inputs_alike() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (3, 37, 29), generator=g, dtype=torch.uint8)
    a = imresize(x, scale=0.5, quantize=True)
    b = imresize(x.to(torch.float32), scale=0.5, quantize=True)
    assert a.dtype == torch.uint8 and torch.equal(a, b)


def test_non_integer_scale_and_explicit_size_shapes() -> None:
    x = torch.rand(3, 100, 75)
    assert imresize(x, scale=0.37).shape == (3, 37, 28)  # ceil(37.0), ceil(27.75)
    assert imresize(x, size=(33, 50)).shape == (3, 33, 50)
    assert imresize(x, scale=2.5).shape == (3, 250, 188)  # ceil(187.5)
    assert imresize(x, size=(None, 150)).shape == (3, 200, 150)
    assert imresize(torch.rand(2, 3, 10, 12), scale=1.5, kernel="lanczos3").shape == (2, 3, 15, 18)
    assert imresize(torch.rand(10, 12), size=(7, 30), kernel="linear").shape == (7, 30)
    assert output_size(300, 1 / 3) == 100 and output_size(10, 0.25) == 3


def test_exactly_one_of_scale_or_size() -> None:
    x = torch.rand(1, 8, 8)
    with pytest.raises(ValueError):
        imresize(x)
    with pytest.raises(ValueError):
        imresize(x, scale=0.5, size=(4, 4))
    with pytest.raises(ValueError):
        imresize(x, scale=0.5, kernel="nearest-ish")


@pytest.mark.parametrize("kernel", ["cubic", "linear", "lanczos3"])
@pytest.mark.parametrize("scale", [2.0, 0.5, 0.37, 1.7])
def test_constant_image_stays_constant(kernel: str, scale: float) -> None:
    x = torch.full((3, 20, 17), 0.4375, dtype=torch.float64)
    y = imresize(x, scale=scale, kernel=kernel)
    assert torch.allclose(y, torch.full_like(y, 0.4375), atol=1e-12)
    q = imresize(torch.full((1, 20, 17), 200, dtype=torch.uint8), scale=scale, kernel=kernel, quantize=True)
    assert bool((q == 200).all())


def test_antialias_changes_downscale_only() -> None:
    x = torch.rand(1, 32, 32, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert not torch.allclose(imresize(x, scale=0.5), imresize(x, scale=0.5, antialias=False))
    assert torch.equal(imresize(x, scale=2.0), imresize(x, scale=2.0, antialias=False))


def test_linear_upscale_matches_hand_computation() -> None:
    # MATLAB bilinear ×2 of [0, 1] along width: centres u = x/2 + 1/4, edges replicated.
    x = torch.tensor([[0.0, 1.0]], dtype=torch.float64)
    y = imresize(x, size=(1, 4), kernel="linear")
    assert torch.allclose(y, torch.tensor([[0.0, 0.25, 0.75, 1.0]], dtype=torch.float64))


def test_dtypes_and_resize_float() -> None:
    x = torch.rand(3, 16, 16)
    assert imresize(x, scale=0.5).dtype == torch.float32
    assert imresize(x.double(), scale=0.5).dtype == torch.float64
    h = imresize(x.half(), scale=0.5)
    assert h.dtype == torch.float16
    assert torch.allclose(h.float(), imresize(x, scale=0.5), atol=2e-3)
    assert imresize(x, scale=1.0) is not x
    y = resize_float(x.unsqueeze(0), (24, 8))
    assert y.shape == (1, 3, 24, 8) and y.dtype == torch.float32


def test_matlab_downscale_layouts() -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (12, 18, 3), dtype=np.uint8)
    gray = rgb[..., 0].copy()
    out_rgb = matlab_downscale_uint8(rgb, 3)
    out_gray = matlab_downscale_uint8(gray, 3)
    assert out_rgb.shape == (4, 6, 3) and out_gray.shape == (4, 6)
    assert np.array_equal(out_rgb[..., 0], out_gray)  # channels independent
    assert modcrop(np.zeros((13, 10, 3)), 4).shape == (12, 8, 3)


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_device(device: str) -> None:
    if device not in DEVICES:
        pytest.skip("CUDA not available")
    g = torch.Generator().manual_seed(2)
    x8 = torch.randint(0, 256, (2, 3, 24, 30), generator=g, dtype=torch.uint8)
    ref_q = imresize(x8, scale=0.25, quantize=True)
    ref_f = imresize(x8.float() / 255, scale=1.5)
    q = imresize(x8.to(device), scale=0.25, quantize=True)
    f = imresize(x8.to(device).float() / 255, scale=1.5)
    assert q.device.type == device and f.device.type == device
    assert torch.equal(q.cpu(), ref_q)
    assert torch.allclose(f.cpu(), ref_f, atol=1e-5)
