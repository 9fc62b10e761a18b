"""Formats: names, extensions, the --format table, HEIC/AVIF/GIF reading and writing, quantisation."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image as PILImage
from PIL import ImageCms, ImageOps

from jdsr_cli.errors import ImageReadError, ImageWriteError, UsageError
from jdsr_cli.io import formats, plugins
from jdsr_cli.io.formats import (
    INPUT_EXTENSIONS,
    MAX_DIMENSION,
    OUTPUT_FORMATS,
    default_output_extension,
    format_supports_16bit,
    format_supports_alpha,
    format_supports_gray,
    format_supports_metadata,
    normalize_format,
    output_extension,
)
from jdsr_cli.io.image import Image, decode_image, read_image, write_image
from jdsr_cli.io.quantize import quantize, quantize_tensor, to_uint8, to_uint16

SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
needs_heif = pytest.mark.skipif(not plugins.heif_available(), reason="pillow-heif is not installed")
needs_avif = pytest.mark.skipif(not plugins.avif_available(), reason="this Pillow has no AVIF support")


def _gradient(width: int = 64, height: int = 48, channels: int = 3) -> np.ndarray:
    """Smooth float32 pixels (lossy codecs keep them within a few levels)."""
    y, x = np.mgrid[0:height, 0:width]
    planes = [x / (width - 1), y / (height - 1), (x + y) / (width + height - 2), 1 - x / (width - 1)]
    return np.stack(planes[:channels], axis=2).astype(np.float32)


def _exif(orientation: int) -> bytes:
    exif = PILImage.Exif()
    exif[271] = "jdsr-camera"
    exif[0x0112] = orientation
    return exif.tobytes()


# --------------------------------------------------------------------------------------------
# Quantisation: one rule
# --------------------------------------------------------------------------------------------


def test_quantize_rounds_half_up_and_clips() -> None:
    halves = np.array([0.5, 1.5, 2.5, 253.5, 254.5], dtype=np.float32) / np.float32(255)
    assert to_uint8(halves).tolist() == [1, 2, 3, 254, 255]  # np.round would give 0, 2, 2, 254, 254
    assert to_uint8(np.array([-0.2, 1.7, np.nan, np.inf, -np.inf])).tolist() == [0, 255, 0, 255, 0]
    assert to_uint16(np.array([0.5 / 65535, 1.0], dtype=np.float32)).tolist() == [1, 65535]
    assert quantize(np.zeros((2, 3, 4)), 16).dtype == np.uint16 and quantize(np.zeros(3)).dtype == np.uint8
    with pytest.raises(ValueError):
        quantize(np.zeros(3), 12)


def test_quantize_leaves_its_input_alone_and_matches_the_old_formula() -> None:
    pixels = np.random.default_rng(0).random((32, 32, 3), dtype=np.float32) * 1.2 - 0.1
    before = pixels.copy()
    expected = np.floor(np.clip(pixels, 0, 1) * 255.0 + 0.5).astype(np.uint8)
    assert np.array_equal(to_uint8(pixels), expected)
    assert np.array_equal(pixels, before)


def test_quantize_agrees_with_clip_scale_floor_at_every_code_boundary() -> None:
    """The fast form (scale, then clamp) must give the rule's integers exactly, also a float32 step either side
    of every half code, outside [0, 1] and for float64 input."""
    for depth, top in ((8, 255), (16, 65535)):
        halves = (np.arange(top + 1, dtype=np.float32) + np.float32(0.5)) / np.float32(top)
        near = np.concatenate([np.nextafter(halves, np.float32(-1)), halves, np.nextafter(halves, np.float32(2))])
        wild = np.random.default_rng(depth).random(20000, dtype=np.float32) * 1.4 - 0.2
        edges = np.array([0, 1, -0.0, 1e-30, -1e-30, 1 + 1e-7, 3e38, -3e38, np.nan, np.inf, -np.inf], np.float32)
        for values in (near, wild, edges, wild.astype(np.float64)):
            clean = np.nan_to_num(values.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0)
            expected = np.floor(np.clip(clean, 0, 1) * np.float32(top) + np.float32(0.5))
            assert np.array_equal(quantize(values, depth), expected.astype(np.uint8 if depth == 8 else np.uint16))
            if depth == 8:  # the engine's on-device rounding: the same integers
                assert np.array_equal(quantize_tensor(torch.from_numpy(values)).numpy(), expected.astype(np.uint8))


def test_quantize_inverts_the_read_scaling() -> None:
    codes = np.arange(65536, dtype=np.uint16)
    assert np.array_equal(to_uint16(np.divide(codes, 65535, dtype=np.float32)), codes)
    codes8 = np.arange(256, dtype=np.uint8)
    assert np.array_equal(to_uint8(np.divide(codes8, 255, dtype=np.float32)), codes8)


# --------------------------------------------------------------------------------------------
# Names, extensions, --format
# --------------------------------------------------------------------------------------------


def test_names_and_aliases() -> None:
    assert OUTPUT_FORMATS == ("png", "jpeg", "webp", "tiff", "bmp", "gif", "heic", "avif")
    for alias, canonical in {"JPG": "jpeg", ".jfif": "jpeg", "heif": "heic", "HIF": "heic", "apng": "png",
                             "avif": "avif", "gif": "gif", "tif": "tiff"}.items():
        assert normalize_format(alias) == canonical
    assert normalize_format("jxl") is None
    assert set(MAX_DIMENSION) == set(OUTPUT_FORMATS)


def test_input_extensions() -> None:
    for ext in (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".gif", ".heic", ".heif", ".avif"):
        assert ext in INPUT_EXTENSIONS
    assert all(ext == ext.lower() and ext.startswith(".") for ext in INPUT_EXTENSIONS)


def test_output_extension_table() -> None:
    table = {"png": "png", "jpg": "jpg", "jpeg": "jpg", "JPEG": "jpg", "webp": "webp", "tif": "tiff",
             "tiff": "tiff", "bmp": "bmp", "gif": "gif", ".png": "png"}
    if plugins.heif_available():
        table.update(heic="heic", heif="heif")
    if plugins.avif_available():
        table.update(avif="avif")
    for name, ext in table.items():
        assert output_extension(name) == ext, name
    assert output_extension(None) is None
    with pytest.raises(UsageError, match=r"--format 'jxl': choose png, jpg, webp, tiff, bmp, gif, heic or avif"):
        output_extension("jxl")


def test_missing_encoders_are_usage_errors_and_fall_back_to_png(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(formats, "writer_available", lambda fmt: fmt not in ("heic", "avif"))
    with pytest.raises(UsageError, match=r"--format 'heic': writing HEIC needs the pillow-heif package"):
        output_extension("heic")
    with pytest.raises(UsageError, match=r"--format 'avif': writing AVIF needs Pillow 11.3"):
        output_extension("avif")
    assert default_output_extension(".HEIC") == "png"
    assert default_output_extension(".avif") == "png"


def test_default_output_extension(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(formats, "writer_available", lambda fmt: True)
    for suffix, ext in {".jpg": "jpg", ".JPG": "JPG", ".jpeg": "jpeg", "png": "png", ".heic": "heic",
                        ".HEIF": "HEIF", ".avif": "avif", ".gif": "gif", ".tif": "tif", ".xyz": "png",
                        "": "png", ".ppm": "png"}.items():
        assert default_output_extension(suffix) == ext, suffix


def test_capabilities_of_the_new_formats() -> None:
    for fmt in ("gif", "heic", "avif"):
        assert not format_supports_16bit(fmt)
        assert format_supports_alpha(fmt)
    assert format_supports_metadata("heic") and format_supports_metadata("avif")
    assert not format_supports_metadata("gif")
    assert not format_supports_gray("heic") and format_supports_gray("avif") and not format_supports_gray("gif")


def test_missing_writer_is_a_write_error_naming_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import jdsr_cli.io.writer as writer

    monkeypatch.setattr(writer, "writer_available", lambda fmt: fmt != "heic")
    with pytest.raises(ImageWriteError, match=r"x\.heic: writing HEIC needs the pillow-heif package \(pip install"):
        write_image(tmp_path / "x.heic", Image(_gradient()))
    assert not (tmp_path / "x.heic").exists()


def test_missing_reader_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64
    avif = b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf" + b"\x00" * 64
    assert plugins.sniff_isobmff_format(heic) == "heic" and plugins.sniff_isobmff_format(avif) == "avif"
    assert plugins.sniff_isobmff_format(b"\x89PNG\r\n\x1a\n" + b"\x00" * 32) is None
    monkeypatch.setattr(plugins, "register_plugins", lambda: False)
    monkeypatch.setattr(plugins, "avif_available", lambda: False)
    assert "pillow-heif" in plugins.missing_reader_message(heic)
    assert "pip install -U pillow" in plugins.missing_reader_message(avif)


def test_unknown_isobmff_still_reads_as_unrecognised() -> None:
    with pytest.raises(ImageReadError, match="not a recognised image format"):
        decode_image(b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00" + b"\x00" * 64)


# --------------------------------------------------------------------------------------------
# HEIC and AVIF
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", [pytest.param("heic", marks=needs_heif), pytest.param("avif", marks=needs_avif)])
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_heic_avif_round_trip_keeps_metadata(tmp_path: Path, fmt: str, channels: int) -> None:
    pixels = _gradient(channels=channels)
    icc = SRGB if channels >= 3 else None
    write_image(tmp_path / f"x.{fmt}", Image(pixels, icc_profile=icc, exif=_exif(6)))
    back = read_image(tmp_path / f"x.{fmt}")
    assert back.size == (64, 48) and back.bit_depth == 8 and back.warnings == ()
    gray_kept = format_supports_gray(fmt) or channels != 1
    assert back.channels == (channels if gray_kept else 3)
    assert np.abs(back.pixels[..., :channels] - pixels).max() < 0.05
    assert back.icc_profile == icc
    exif = PILImage.Exif()
    exif.load(back.exif)
    assert exif[271] == "jdsr-camera" and exif.get(0x0112, 1) == 1  # the orientation was reset on write


@pytest.mark.parametrize("fmt", [pytest.param("HEIF", marks=needs_heif), pytest.param("AVIF", marks=needs_avif)])
def test_heic_avif_orientation_is_applied(fmt: str) -> None:
    """A file whose EXIF (AVIF) or irot box (HEIC) says "rotate 90°" reads upright."""
    plugins.register_plugins()
    pixels = (_gradient(channels=3) * 255).astype(np.uint8)
    buf = io.BytesIO()
    PILImage.fromarray(pixels).save(buf, format=fmt, quality=95, exif=_exif(6))
    image = decode_image(buf.getvalue())
    source = PILImage.fromarray(pixels)
    source.getexif()[0x0112] = 6
    expected = np.asarray(ImageOps.exif_transpose(source)) / 255
    assert image.size == (48, 64)
    assert np.abs(image.pixels - expected).mean() < 0.02


@needs_avif
@pytest.mark.parametrize("depth", [10, 12])
def test_deep_avif_is_read_at_16_bits(depth: int) -> None:
    if not cv2.haveImageWriter(".avif"):
        pytest.skip("this OpenCV cannot write AVIF")
    top = (1 << depth) - 1
    codes = np.round(_gradient(channels=4) * top).astype(np.uint16)
    ok, buf = cv2.imencode(".avif", codes[..., [2, 1, 0, 3]], [cv2.IMWRITE_AVIF_DEPTH, depth, cv2.IMWRITE_AVIF_QUALITY, 100])
    assert ok
    image = decode_image(buf.tobytes())
    assert image.bit_depth == 16 and image.channels == 4 and image.warnings == ()
    np.testing.assert_allclose(image.pixels, codes / top, atol=1e-6)  # exact: lossless, scaled by 65535/top


@needs_heif
def test_deep_heic_is_read_at_16_bits() -> None:
    import pillow_heif

    codes = np.round(_gradient(channels=3) * 65535).astype(np.uint16)
    heif = pillow_heif.from_bytes(mode="RGB;16", size=(64, 48), data=codes.tobytes())
    buf = io.BytesIO()
    heif.save(buf, quality=-1)
    image = decode_image(buf.getvalue())
    assert image.bit_depth == 16 and image.channels == 3
    assert np.abs(image.pixels - codes / 65535).max() < 0.03
    assert image.pixels.max() == 1.0  # 1023 -> 1.0 exactly, not 1023 << 6


@pytest.mark.parametrize("fmt", [pytest.param("heic", marks=needs_heif), pytest.param("avif", marks=needs_avif)])
def test_heic_avif_lossless_is_refused(tmp_path: Path, fmt: str) -> None:
    with pytest.raises(ImageWriteError, match="cannot be saved losslessly"):
        write_image(tmp_path / f"x.{fmt}", Image(_gradient()), lossless=True)


# --------------------------------------------------------------------------------------------
# GIF stills
# --------------------------------------------------------------------------------------------


def test_gif_with_few_colours_is_exact_and_keeps_transparency(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    palette = rng.integers(0, 256, (200, 3), dtype=np.uint8)
    rgb = palette[rng.integers(0, 200, (40, 50))]
    alpha = np.where(rng.random((40, 50)) < 0.3, 0, 255).astype(np.uint8)
    write_image(tmp_path / "a.gif", Image(np.dstack([rgb, alpha]) / 255))
    back = read_image(tmp_path / "a.gif")
    assert back.channels == 4
    q = np.round(back.pixels * 255).astype(np.uint8)
    assert np.array_equal(q[..., 3], alpha)
    assert np.array_equal(q[..., :3][alpha == 255], rgb[alpha == 255])


def test_gif_with_many_colours_is_quantised_closely(tmp_path: Path) -> None:
    pixels = _gradient(channels=3)
    write_image(tmp_path / "g.gif", Image(pixels))
    back = read_image(tmp_path / "g.gif")
    assert back.channels == 3 and np.abs(back.pixels - pixels).mean() < 0.02


def test_gif_gray_is_exact_as_rgb(tmp_path: Path) -> None:
    pixels = _gradient(channels=1)
    write_image(tmp_path / "g.gif", Image(pixels))
    back = read_image(tmp_path / "g.gif")  # a GIF is a palette: it reads back as RGB
    assert back.channels == 3 and np.abs(back.pixels - pixels).max() <= 0.5 / 255 + 1e-6


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_large_8bit_png_streams_through_our_encoder_losslessly(tmp_path: Path, channels: int,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Above STREAMING_PNG_PIXELS an 8-bit PNG skips Pillow (its 4-byte-a-pixel copy): same samples and metadata."""
    from jdsr_cli.io import encoders, writer
    from tests.helpers.imagefiles import SRGB, exif_bytes, rand8

    monkeypatch.setattr(writer, "STREAMING_PNG_PIXELS", 100)  # the 12×10 image below counts as large
    monkeypatch.setattr(encoders, "encode_pillow", lambda *a, **k: pytest.fail("Pillow encoded a large PNG"))
    samples = rand8((10, 12, channels))
    gray = channels in (1, 2)
    image = Image(samples.astype(np.float32) / 255, icc_profile=None if gray else SRGB, exif=exif_bytes(orientation=6))
    write_image(tmp_path / "big.png", image)
    back = PILImage.open(tmp_path / "big.png")
    assert np.array_equal(np.asarray(back).reshape(10, 12, channels), samples)
    assert back.getexif().get(0x0112) == 1  # written upright, as every output
    assert (back.info.get("icc_profile") is not None) == (not gray)
