"""Image reading and writing: round trips at every depth and mode."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from jdsr_cli.errors import ImageReadError
from jdsr_cli.io.image import Image, format_supports_16bit, read_image, write_image
from tests.helpers.imagefiles import RNG, as8, as16, cv2_read, cv2_write, rand8, rand16


def test_png_8bit_rgb_round_trip_exact(tmp_path: Path) -> None:
    src = rand8((23, 31, 3))
    PILImage.fromarray(src).save(tmp_path / "in.png")
    img = read_image(tmp_path / "in.png")
    assert img.pixels.dtype == np.float32 and img.pixels.shape == (23, 31, 3)
    assert img.bit_depth == 8 and img.source_format == "PNG" and img.size == (31, 23)
    assert not img.has_alpha and not img.is_gray and img.alpha is None
    assert np.array_equal(as8(img), src)
    write_image(tmp_path / "out.png", img)
    assert np.array_equal(np.asarray(PILImage.open(tmp_path / "out.png")), src)


@pytest.mark.parametrize("channels", [3, 4])
def test_png_16bit_color_round_trip_exact(tmp_path: Path, channels: int) -> None:
    src = rand16((19, 27, channels))
    cv2_write(tmp_path / "in.png", src)
    img = read_image(tmp_path / "in.png")
    assert img.bit_depth == 16 and img.channels == channels
    assert np.array_equal(as16(img), src)
    write_image(tmp_path / "out.png", img)
    assert np.array_equal(cv2_read(tmp_path / "out.png"), src)
    assert np.array_equal(as16(read_image(tmp_path / "out.png")), src)


def test_png_16bit_gray_alpha_round_trip(tmp_path: Path) -> None:
    src = rand16((9, 13, 2))
    img = Image(src / np.float32(65535), bit_depth=16)
    write_image(tmp_path / "la.png", img)
    assert (tmp_path / "la.png").read_bytes()[24:26] == bytes([16, 4])  # 16-bit gray + alpha
    back = read_image(tmp_path / "la.png")
    assert back.channels == 2 and back.bit_depth == 16
    assert np.array_equal(as16(back), src)


@pytest.mark.parametrize("suffix", [".png", ".tiff"])
def test_16bit_gray_round_trip(tmp_path: Path, suffix: str) -> None:
    src = rand16((17, 11))
    cv2_write(tmp_path / f"in{suffix}", src)
    img = read_image(tmp_path / f"in{suffix}")
    assert img.bit_depth == 16 and img.channels == 1
    assert np.array_equal(as16(img)[:, :, 0], src)
    write_image(tmp_path / f"out{suffix}", img)
    assert np.array_equal(cv2_read(tmp_path / f"out{suffix}"), src)
    with PILImage.open(tmp_path / f"out{suffix}") as pil:
        assert pil.mode.startswith("I;16")


@pytest.mark.parametrize("channels", [3, 4])
def test_tiff_16bit_color_round_trip(tmp_path: Path, channels: int) -> None:
    src = rand16((14, 9, channels))
    cv2_write(tmp_path / "in.tiff", src)
    img = read_image(tmp_path / "in.tiff")
    assert img.bit_depth == 16 and img.channels == channels
    assert np.array_equal(as16(img), src)
    write_image(tmp_path / "out.tif", img, bit_depth=16)
    assert np.array_equal(cv2_read(tmp_path / "out.tif"), src)
    assert np.array_equal(as16(read_image(tmp_path / "out.tif")), src)


def test_tiff_16bit_gray_alpha_written_as_rgba(tmp_path: Path) -> None:
    src = rand16((5, 6, 2))
    write_image(tmp_path / "la.tiff", Image(src / np.float32(65535), bit_depth=16))
    back = read_image(tmp_path / "la.tiff")
    assert back.channels == 4 and back.bit_depth == 16  # the documented fallback
    q = as16(back)
    assert np.array_equal(q[:, :, 0], src[:, :, 0]) and np.array_equal(q[:, :, 2], src[:, :, 0])
    assert np.array_equal(q[:, :, 3], src[:, :, 1])


def test_i16_tiff_from_pillow(tmp_path: Path) -> None:
    src = rand16((8, 10))
    PILImage.fromarray(src).save(tmp_path / "g.tif")  # mode I;16
    img = read_image(tmp_path / "g.tif")
    assert img.bit_depth == 16 and img.channels == 1
    assert np.array_equal(as16(img)[:, :, 0], src)


def test_mode_i_and_f_are_gray16(tmp_path: Path) -> None:
    ints = np.array([[0, 1, 1000, 65535]], dtype=np.int32)
    PILImage.fromarray(ints).save(tmp_path / "i.tif")
    img = read_image(tmp_path / "i.tif")
    assert img.bit_depth == 16 and img.channels == 1
    assert as16(img)[0, :, 0].tolist() == [0, 1, 1000, 65535]
    for wide in ([[0, 70000]], [[-5, 100]]):  # past 16 bits, or signed: refused rather than clipped
        PILImage.fromarray(np.array(wide, dtype=np.int32)).save(tmp_path / "wide.tif")
        with pytest.raises(ImageReadError, match=rf"wide.tif: integer samples run from {wide[0][0]} to {wide[0][1]}"):
            read_image(tmp_path / "wide.tif")
    floats = np.array([[-0.2, 0.25, 0.5, 1.3]], dtype=np.float32)  # overshoots; another scale is refused
    PILImage.fromarray(floats).save(tmp_path / "f.tif")
    img = read_image(tmp_path / "f.tif")
    assert img.bit_depth == 16
    assert img.pixels[0, :, 0].tolist() == [0.0, 0.25, 0.5, 1.0]


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_8bit_alpha_round_trip(tmp_path: Path, mode: str) -> None:
    src = rand8((12, 7, len(mode)))
    PILImage.fromarray(src).save(tmp_path / "a.png")
    img = read_image(tmp_path / "a.png")
    assert img.has_alpha and img.channels == len(mode) and img.is_gray == (mode == "LA")
    assert np.array_equal(as8(img), src)
    assert np.array_equal(img.alpha, img.pixels[:, :, -1]) and img.color.shape[2] == len(mode) - 1
    for suffix in (".png", ".tiff"):
        write_image(tmp_path / f"out{suffix}", img)
        with PILImage.open(tmp_path / f"out{suffix}") as pil:
            assert pil.mode == mode
            assert np.array_equal(np.asarray(pil), src)


def test_opaque_alpha_is_kept_on_read(tmp_path: Path) -> None:
    PILImage.new("RGBA", (4, 3), (10, 20, 30, 255)).save(tmp_path / "o.png")
    img = read_image(tmp_path / "o.png")
    assert img.channels == 4 and np.all(img.alpha == 1.0)


def test_palette_with_and_without_transparency(tmp_path: Path) -> None:
    pal = PILImage.new("P", (4, 2))
    pal.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    pal.putpixel((1, 0), 1)
    pal.save(tmp_path / "p.png")
    pal.save(tmp_path / "pt.png", transparency=0)
    opaque = read_image(tmp_path / "p.png")
    assert opaque.channels == 3
    assert as8(opaque)[0, 1].tolist() == [0, 255, 0] and as8(opaque)[0, 0].tolist() == [255, 0, 0]
    clear = read_image(tmp_path / "pt.png")
    assert clear.channels == 4
    assert as8(clear)[0, 0].tolist() == [255, 0, 0, 0] and as8(clear)[0, 1].tolist() == [0, 255, 0, 255]


def test_trns_colour_key_becomes_alpha(tmp_path: Path) -> None:
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[0, 0] = (9, 9, 9)
    PILImage.fromarray(rgb).save(tmp_path / "k.png", transparency=(9, 9, 9))
    img = read_image(tmp_path / "k.png")
    assert img.channels == 4 and img.alpha[0, 0] == 0.0 and img.alpha[1, 1] == 1.0


def test_cmyk_jpeg_becomes_rgb(tmp_path: Path) -> None:
    PILImage.new("CMYK", (8, 8), (0, 255, 255, 0)).save(tmp_path / "c.jpg", quality=100)
    img = read_image(tmp_path / "c.jpg")
    assert img.channels == 3 and img.bit_depth == 8 and img.icc_profile is None
    r, g, b = as8(img)[4, 4].tolist()
    assert r > 230 and g < 25 and b < 25  # C=0 M=100% Y=100% is red


def test_one_bit_image(tmp_path: Path) -> None:
    bw = PILImage.new("1", (3, 3), 0)
    bw.putpixel((1, 1), 1)
    bw.save(tmp_path / "bw.png")
    img = read_image(tmp_path / "bw.png")
    assert img.channels == 1 and img.pixels[1, 1, 0] == 1.0 and img.pixels[0, 0, 0] == 0.0


def test_lab_tiff_is_colour_managed_to_srgb(tmp_path: Path) -> None:
    PILImage.new("LAB", (2, 2), (136, 208, 195)).save(tmp_path / "lab.tif")  # L 53, a 80, b 67
    img = read_image(tmp_path / "lab.tif")
    assert img.channels == 3 and img.icc_profile is not None and img.icc_profile[16:20] == b"RGB "
    r, g, b = as8(img)[0, 0].tolist()
    assert r > 240 and g < 20 and b < 30  # sRGB red


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".tiff", ".bmp"])
def test_gray_stays_gray(tmp_path: Path, suffix: str) -> None:
    src = np.tile(np.arange(0, 256, 16, dtype=np.uint8), (8, 1))
    PILImage.fromarray(src).save(tmp_path / "g.png")
    img = read_image(tmp_path / "g.png")
    assert img.is_gray and img.channels == 1
    write_image(tmp_path / f"out{suffix}", img)
    with PILImage.open(tmp_path / f"out{suffix}") as pil:
        assert pil.mode == "L"
    back = read_image(tmp_path / f"out{suffix}")
    assert back.channels == 1
    tolerance = 3 if suffix == ".jpg" else 0
    assert np.abs(as8(back)[:, :, 0].astype(int) - src).max() <= tolerance


def test_gray_to_webp_becomes_rgb(tmp_path: Path) -> None:
    src = rand8((6, 6))
    write_image(tmp_path / "g.webp", Image(src / np.float32(255)), lossless=True)
    back = read_image(tmp_path / "g.webp")
    assert back.channels == 3
    assert all(np.array_equal(as8(back)[:, :, c], src) for c in range(3))


def test_rounding_is_half_up_and_clipped(tmp_path: Path) -> None:
    pixels = np.array([[[-0.5], [0.5], [1.5], [np.nan]]], dtype=np.float32)
    write_image(tmp_path / "r8.png", Image(pixels, bit_depth=8))
    assert np.asarray(PILImage.open(tmp_path / "r8.png")).tolist() == [[0, 128, 255, 0]]
    write_image(tmp_path / "r16.png", Image(pixels, bit_depth=16))
    assert cv2_read(tmp_path / "r16.png").tolist() == [[0, 32768, 65535, 0]]


def test_16bit_to_8bit_only_formats(tmp_path: Path) -> None:
    assert format_supports_16bit("png") and format_supports_16bit("TIF")
    assert not format_supports_16bit("jpg") and not format_supports_16bit(".webp")
    assert not format_supports_16bit("bmp")
    src = rand16((5, 5, 3))
    img = Image(src / np.float32(65535), bit_depth=16)
    write_image(tmp_path / "x.bmp", img)
    back = read_image(tmp_path / "x.bmp")
    assert back.bit_depth == 8
    assert np.array_equal(as8(back), np.floor(src / 65535 * 255 + 0.5).astype(np.uint8))
    write_image(tmp_path / "y.png", img, bit_depth=8)
    assert read_image(tmp_path / "y.png").bit_depth == 8


def test_webp_lossless_exact_including_hidden_colour(tmp_path: Path) -> None:
    src = rand8((16, 16, 4))
    src[0, 0, 3] = 0  # the colour under a fully transparent pixel survives too
    write_image(tmp_path / "l.webp", Image(src / np.float32(255)), lossless=True)
    back = read_image(tmp_path / "l.webp")
    assert back.source_format == "WEBP" and np.array_equal(as8(back), src)


def test_jpeg_quality_changes_size(tmp_path: Path) -> None:
    img = Image(np.clip(RNG.normal(0.5, 0.2, (48, 48, 3)), 0, 1))
    write_image(tmp_path / "lo.jpg", img, quality=30)
    write_image(tmp_path / "hi.jpg", img)  # default 95
    write_image(tmp_path / "w.webp", img, quality=20)
    write_image(tmp_path / "w2.webp", img)
    assert (tmp_path / "lo.jpg").stat().st_size < (tmp_path / "hi.jpg").stat().st_size
    assert (tmp_path / "w.webp").stat().st_size < (tmp_path / "w2.webp").stat().st_size
    with PILImage.open(tmp_path / "hi.jpg") as pil:
        from PIL import JpegImagePlugin

        assert JpegImagePlugin.get_sampling(pil) == 0  # 4:4:4 at quality >= 90


def test_non_ascii_path(tmp_path: Path) -> None:
    folder = tmp_path / "données"
    folder.mkdir()
    path = folder / "фото 照片.png"
    src = rand16((4, 5, 3))
    write_image(path, Image(src / np.float32(65535), bit_depth=16))
    assert np.array_equal(as16(read_image(path)), src)
    write_image(folder / "фото.jpg", Image(src / np.float32(65535)))
    assert read_image(folder / "фото.jpg").size == (5, 4)
