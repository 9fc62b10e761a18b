"""The upscale library on real images with a checkpoint trained by the tests' own loop."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from jdsr_cli.checkpoints.load import load_checkpoint
from jdsr_cli.commands.upscale import OutputSize, check_scale, create_upscaler, upscale_image
from jdsr_cli.errors import UsageError
from jdsr_cli.io.image import Image, read_image
from jdsr_cli.ops.metrics import MetricConvention
from jdsr_cli.ops.resize import imresize, matlab_downscale_uint8, modcrop


def _psnr_db(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def _lr_of(data_dir: Path, name: str, scale: int = 2) -> tuple[np.ndarray, np.ndarray]:
    hr = (read_image(data_dir / "benchmark" / "Set5" / "HR" / f"{name}.png").pixels * 255).round().astype(np.uint8)
    hr = modcrop(hr, scale)
    return matlab_downscale_uint8(hr, scale), hr


@pytest.fixture(scope="module")
def loaded(trained_checkpoint: Path):  # type: ignore[no-untyped-def]
    return load_checkpoint(trained_checkpoint)


@pytest.mark.parametrize("name,tile", [("baby", 64), ("butterfly", 48), ("woman", 40)])
def test_tiled_matches_untiled_on_real_images(loaded, data_dir: Path, name: str, tile: int) -> None:  # type: ignore[no-untyped-def]
    lr, _ = _lr_of(data_dir, name)
    pixels = lr.astype(np.float32) / 255
    whole = create_upscaler(loaded, device="cpu", tile=0).upscale(pixels)
    tiled = create_upscaler(loaded, device="cpu", tile=tile, overlap=16).upscale(pixels)
    assert whole.tile is None and tiled.tile == tile and tiled.tiles > 1
    assert _psnr_db(tiled.pixels, whole.pixels) >= 50.0


def test_upscale_is_sharper_than_bicubic(loaded, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    convention = MetricConvention.standard(2)
    gains = []
    for name in ("baby", "bird", "butterfly", "head", "woman"):
        lr, hr = _lr_of(data_dir, name)
        image = Image(pixels=lr.astype(np.float32) / 255, bit_depth=8, icc_profile=None, exif=None, source_format="PNG")
        out, report = upscale_image(image, create_upscaler(loaded, device="cpu"))
        assert report.size_out == (hr.shape[1], hr.shape[0])
        assert out.pixels.dtype == np.uint8  # an 8-bit RGB image at the model's scale: quantized band by band
        sr = out.pixels
        bicubic = imresize(torch.from_numpy(lr).permute(2, 0, 1).double(), scale=2).clamp(0, 255)
        bicubic = np.floor(bicubic.permute(1, 2, 0).numpy() + 0.5).astype(np.uint8)
        gains.append(convention.psnr(sr, hr) - convention.psnr(bicubic, hr))
    assert min(gains) > 0.3, f"{convention.psnr_label} gains over bicubic: {gains}"


def test_8bit_output_is_the_writers_rounding_of_the_float_output(loaded) -> None:  # type: ignore[no-untyped-def]
    from jdsr_cli.io.quantize import quantize

    rgb = np.random.default_rng(3).random((37, 29, 3))
    upscaler = create_upscaler(loaded, device="cpu", tile=16, overlap=4)
    fast, _ = upscale_image(_image(rgb), upscaler)
    deep, _ = upscale_image(_image(rgb, depth=16), upscaler)  # 16-bit sources keep the float path
    assert fast.pixels.dtype == np.uint8 and deep.pixels.dtype == np.float32
    assert np.array_equal(fast.pixels, quantize(deep.pixels, 8))


def _image(pixels: np.ndarray, depth: int = 8) -> Image:
    return Image(pixels=pixels.astype(np.float32), bit_depth=depth, icc_profile=None, exif=None, source_format="PNG")


def test_gray_in_gray_out(loaded) -> None:  # type: ignore[no-untyped-def]
    gray = np.random.default_rng(0).random((20, 24, 1))
    out, _ = upscale_image(_image(gray), create_upscaler(loaded, device="cpu"))
    assert out.pixels.shape == (40, 48, 1)


@pytest.mark.parametrize("mode,expected", [("auto", "constant"), ("model", "model"), ("bicubic", "bicubic")])
def test_alpha_modes(loaded, mode: str, expected: str) -> None:  # type: ignore[no-untyped-def]
    rgba = np.random.default_rng(1).random((16, 20, 4))
    rgba[..., 3] = 0.5
    out, report = upscale_image(_image(rgba), create_upscaler(loaded, device="cpu"), alpha=mode)
    assert out.pixels.shape == (32, 40, 4) and report.alpha == expected
    if mode == "auto":
        assert np.all(out.pixels[..., 3] == np.float32(0.5))
    else:
        assert abs(float(out.pixels[..., 3].mean()) - 0.5) < 0.05


def test_alpha_auto_runs_model_on_varying_alpha_and_discard_drops_it(loaded) -> None:  # type: ignore[no-untyped-def]
    rgba = np.zeros((24, 24, 4))
    rgba[6:18, 6:18] = (1.0, 0.0, 0.0, 1.0)  # opaque red square on a transparent black background
    upscaler = create_upscaler(loaded, device="cpu")
    out, report = upscale_image(_image(rgba), upscaler, alpha="auto")
    assert report.alpha == "model"
    edge = out.pixels[10:38, 10:38][(out.pixels[10:38, 10:38, 3] > 0.2) & (out.pixels[10:38, 10:38, 3] < 0.8)]
    assert edge.size and edge[:, 0].min() > 0.8, "no dark fringe: colour at the soft edge stays red"
    dropped, report = upscale_image(_image(rgba), upscaler, alpha="discard")
    assert report.alpha is None and dropped.pixels.shape[2] == 3


@pytest.mark.parametrize(
    "size,expected",
    [(OutputSize(), (40, 30)), (OutputSize(outscale=1.5), (30, 22)), (OutputSize(outscale=3.0), (60, 45)),
     (OutputSize(width=50), (50, 38)), (OutputSize(height=10), (13, 10)), (OutputSize(width=33, height=21), (33, 21))],
)
def test_output_size_is_independent_of_model_scale(loaded, size: OutputSize, expected: tuple[int, int]) -> None:  # type: ignore[no-untyped-def]
    image = _image(np.random.default_rng(2).random((15, 20, 3)))
    out, report = upscale_image(image, create_upscaler(loaded, device="cpu"), size=size)
    assert report.size_out == expected and out.pixels.shape[:2] == (expected[1], expected[0])


def test_output_size_validation_and_scale_mismatch() -> None:
    with pytest.raises(UsageError):
        OutputSize(outscale=2.0, width=100)
    with pytest.raises(UsageError):
        OutputSize(outscale=-1.0)
    assert OutputSize().suffix(4) == "_x4" and OutputSize(outscale=2.5).suffix(4) == "_x2.5"
    with pytest.raises(UsageError, match="×2 model"):
        check_scale(4, 2, "my-model")
    check_scale(None, 2, "my-model")


def test_y_only_model_keeps_colour(tmp_path: Path) -> None:
    """Single-channel models (most published FSRCNN weights) run on Y; chroma is resized bicubically."""
    from jdsr_cli.archs import REGISTRY
    from jdsr_cli.archs.registry import ArchConfig
    from jdsr_cli.checkpoints.save import save_checkpoint

    config = ArchConfig("fsrcnn", 2, {**REGISTRY.get("fsrcnn").presets["fsrcnn-s"], "num_in_ch": 1, "num_out_ch": 1})
    folder = save_checkpoint(tmp_path / "y", REGISTRY.build(config), config)
    y_model = load_checkpoint(folder)
    rgb = np.zeros((12, 16, 3), np.float32)
    rgb[..., 0] = 0.9  # strongly red: any loss of chroma would show
    out, report = upscale_image(_image(rgb), create_upscaler(y_model, device="cpu"))
    assert out.pixels.shape == (24, 32, 3) and report.size_out == (32, 24)
    assert out.pixels[..., 0].mean() > out.pixels[..., 1].mean() + 0.3
    gray, _ = upscale_image(_image(rgb[..., :1]), create_upscaler(y_model, device="cpu"))
    assert gray.pixels.shape == (24, 32, 1)
