"""Image reading and writing: depths, modes, metadata, orientation, errors, atomicity."""

from __future__ import annotations

import io
import os
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image as PILImage
from PIL import ImageCms, ImageOps

from jdsr_cli.errors import ImageReadError, ImageWriteError, UsageError
from jdsr_cli.io import encoders, png_encoder, tiff_codec
from jdsr_cli.io.image import (
    Image,
    decode_image,
    format_supports_16bit,
    format_supports_alpha,
    read_image,
    resolve_output_format,
    write_image,
)

RNG = np.random.default_rng(1234)
SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _rand16(shape: tuple[int, ...]) -> np.ndarray:
    """uint16 samples that are mostly not multiples of 257, so an 8-bit detour would show."""
    arr = RNG.integers(0, 65536, shape, dtype=np.uint16)
    arr[arr % 257 == 0] += 1
    return arr


def _rand8(shape: tuple[int, ...]) -> np.ndarray:
    return RNG.integers(0, 256, shape, dtype=np.uint8)


def _cv2_write(path: Path, rgb16: np.ndarray) -> None:
    """Write RGB(A) or gray uint16 with OpenCV (an encoder independent of ours)."""
    arr = rgb16
    if arr.ndim == 3 and arr.shape[2] == 3:
        arr = arr[:, :, ::-1]
    elif arr.ndim == 3 and arr.shape[2] == 4:
        arr = arr[:, :, [2, 1, 0, 3]]
    ok, buf = cv2.imencode(path.suffix, arr)
    assert ok
    path.write_bytes(buf.tobytes())


def _cv2_read(path: Path) -> np.ndarray:
    arr = cv2.imdecode(np.frombuffer(path.read_bytes(), np.uint8), cv2.IMREAD_UNCHANGED)
    if arr.ndim == 3 and arr.shape[2] == 3:
        arr = arr[:, :, ::-1]
    elif arr.ndim == 3 and arr.shape[2] == 4:
        arr = arr[:, :, [2, 1, 0, 3]]
    return arr


def _as16(img: Image) -> np.ndarray:
    return np.floor(img.pixels * 65535 + 0.5).astype(np.uint16)


def _as8(img: Image) -> np.ndarray:
    return np.floor(img.pixels * 255 + 0.5).astype(np.uint8)


def _exif(orientation: int | None = None, **extra: object) -> bytes:
    exif = PILImage.Exif()
    exif[271] = "jdsr-camera"  # Make
    if orientation is not None:
        exif[0x0112] = orientation
    exif[0x8769] = {36867: "2021:02:03 04:05:06"}  # DateTimeOriginal in the Exif sub-IFD
    for key, value in extra.items():
        exif[int(key)] = value
    return exif.tobytes()


def _parse_exif(raw: bytes | None) -> PILImage.Exif:
    assert raw is not None
    exif = PILImage.Exif()
    exif.load(raw)
    return exif


# --------------------------------------------------------------------------------------------
# Round trips: depths and modes
# --------------------------------------------------------------------------------------------


def test_png_8bit_rgb_round_trip_exact(tmp_path: Path) -> None:
    src = _rand8((23, 31, 3))
    PILImage.fromarray(src).save(tmp_path / "in.png")
    img = read_image(tmp_path / "in.png")
    assert img.pixels.dtype == np.float32 and img.pixels.shape == (23, 31, 3)
    assert img.bit_depth == 8 and img.source_format == "PNG" and img.size == (31, 23)
    assert not img.has_alpha and not img.is_gray and img.alpha is None
    assert np.array_equal(_as8(img), src)
    write_image(tmp_path / "out.png", img)
    assert np.array_equal(np.asarray(PILImage.open(tmp_path / "out.png")), src)


@pytest.mark.parametrize("channels", [3, 4])
def test_png_16bit_color_round_trip_exact(tmp_path: Path, channels: int) -> None:
    src = _rand16((19, 27, channels))
    _cv2_write(tmp_path / "in.png", src)
    img = read_image(tmp_path / "in.png")
    assert img.bit_depth == 16 and img.channels == channels
    assert np.array_equal(_as16(img), src)
    write_image(tmp_path / "out.png", img)
    assert np.array_equal(_cv2_read(tmp_path / "out.png"), src)
    assert np.array_equal(_as16(read_image(tmp_path / "out.png")), src)


def test_png_16bit_gray_alpha_round_trip(tmp_path: Path) -> None:
    src = _rand16((9, 13, 2))
    img = Image(src / np.float32(65535), bit_depth=16)
    write_image(tmp_path / "la.png", img)
    assert (tmp_path / "la.png").read_bytes()[24:26] == bytes([16, 4])  # 16-bit gray + alpha
    back = read_image(tmp_path / "la.png")
    assert back.channels == 2 and back.bit_depth == 16
    assert np.array_equal(_as16(back), src)


@pytest.mark.parametrize("suffix", [".png", ".tiff"])
def test_16bit_gray_round_trip(tmp_path: Path, suffix: str) -> None:
    src = _rand16((17, 11))
    _cv2_write(tmp_path / f"in{suffix}", src)
    img = read_image(tmp_path / f"in{suffix}")
    assert img.bit_depth == 16 and img.channels == 1
    assert np.array_equal(_as16(img)[:, :, 0], src)
    write_image(tmp_path / f"out{suffix}", img)
    assert np.array_equal(_cv2_read(tmp_path / f"out{suffix}"), src)
    with PILImage.open(tmp_path / f"out{suffix}") as pil:
        assert pil.mode.startswith("I;16")


@pytest.mark.parametrize("channels", [3, 4])
def test_tiff_16bit_color_round_trip(tmp_path: Path, channels: int) -> None:
    src = _rand16((14, 9, channels))
    _cv2_write(tmp_path / "in.tiff", src)
    img = read_image(tmp_path / "in.tiff")
    assert img.bit_depth == 16 and img.channels == channels
    assert np.array_equal(_as16(img), src)
    write_image(tmp_path / "out.tif", img, bit_depth=16)
    assert np.array_equal(_cv2_read(tmp_path / "out.tif"), src)
    assert np.array_equal(_as16(read_image(tmp_path / "out.tif")), src)


def test_tiff_16bit_gray_alpha_written_as_rgba(tmp_path: Path) -> None:
    src = _rand16((5, 6, 2))
    write_image(tmp_path / "la.tiff", Image(src / np.float32(65535), bit_depth=16))
    back = read_image(tmp_path / "la.tiff")
    assert back.channels == 4 and back.bit_depth == 16  # the documented fallback
    q = _as16(back)
    assert np.array_equal(q[:, :, 0], src[:, :, 0]) and np.array_equal(q[:, :, 2], src[:, :, 0])
    assert np.array_equal(q[:, :, 3], src[:, :, 1])


def test_i16_tiff_from_pillow(tmp_path: Path) -> None:
    src = _rand16((8, 10))
    PILImage.fromarray(src).save(tmp_path / "g.tif")  # mode I;16
    img = read_image(tmp_path / "g.tif")
    assert img.bit_depth == 16 and img.channels == 1
    assert np.array_equal(_as16(img)[:, :, 0], src)


def test_mode_i_and_f_are_clipped_gray16(tmp_path: Path) -> None:
    ints = np.array([[-5, 0, 1000, 70000]], dtype=np.int32)
    PILImage.fromarray(ints).save(tmp_path / "i.tif")
    img = read_image(tmp_path / "i.tif")
    assert img.bit_depth == 16 and img.channels == 1
    assert _as16(img)[0, :, 0].tolist() == [0, 0, 1000, 65535]
    floats = np.array([[-1.0, 0.25, 0.5, 3.0]], dtype=np.float32)
    PILImage.fromarray(floats).save(tmp_path / "f.tif")
    img = read_image(tmp_path / "f.tif")
    assert img.bit_depth == 16
    assert img.pixels[0, :, 0].tolist() == [0.0, 0.25, 0.5, 1.0]


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_8bit_alpha_round_trip(tmp_path: Path, mode: str) -> None:
    src = _rand8((12, 7, len(mode)))
    PILImage.fromarray(src).save(tmp_path / "a.png")
    img = read_image(tmp_path / "a.png")
    assert img.has_alpha and img.channels == len(mode) and img.is_gray == (mode == "LA")
    assert np.array_equal(_as8(img), src)
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
    assert _as8(opaque)[0, 1].tolist() == [0, 255, 0] and _as8(opaque)[0, 0].tolist() == [255, 0, 0]
    clear = read_image(tmp_path / "pt.png")
    assert clear.channels == 4
    assert _as8(clear)[0, 0].tolist() == [255, 0, 0, 0] and _as8(clear)[0, 1].tolist() == [0, 255, 0, 255]


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
    r, g, b = _as8(img)[4, 4].tolist()
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
    r, g, b = _as8(img)[0, 0].tolist()
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
    assert np.abs(_as8(back)[:, :, 0].astype(int) - src).max() <= tolerance


def test_gray_to_webp_becomes_rgb(tmp_path: Path) -> None:
    src = _rand8((6, 6))
    write_image(tmp_path / "g.webp", Image(src / np.float32(255)), lossless=True)
    back = read_image(tmp_path / "g.webp")
    assert back.channels == 3
    assert all(np.array_equal(_as8(back)[:, :, c], src) for c in range(3))


def test_rounding_is_half_up_and_clipped(tmp_path: Path) -> None:
    pixels = np.array([[[-0.5], [0.5], [1.5], [np.nan]]], dtype=np.float32)
    write_image(tmp_path / "r8.png", Image(pixels, bit_depth=8))
    assert np.asarray(PILImage.open(tmp_path / "r8.png")).tolist() == [[0, 128, 255, 0]]
    write_image(tmp_path / "r16.png", Image(pixels, bit_depth=16))
    assert _cv2_read(tmp_path / "r16.png").tolist() == [[0, 32768, 65535, 0]]


def test_16bit_to_8bit_only_formats(tmp_path: Path) -> None:
    assert format_supports_16bit("png") and format_supports_16bit("TIF")
    assert not format_supports_16bit("jpg") and not format_supports_16bit(".webp")
    assert not format_supports_16bit("bmp")
    src = _rand16((5, 5, 3))
    img = Image(src / np.float32(65535), bit_depth=16)
    write_image(tmp_path / "x.bmp", img)
    back = read_image(tmp_path / "x.bmp")
    assert back.bit_depth == 8
    assert np.array_equal(_as8(back), np.floor(src / 65535 * 255 + 0.5).astype(np.uint8))
    write_image(tmp_path / "y.png", img, bit_depth=8)
    assert read_image(tmp_path / "y.png").bit_depth == 8


def test_webp_lossless_exact_including_hidden_colour(tmp_path: Path) -> None:
    src = _rand8((16, 16, 4))
    src[0, 0, 3] = 0  # the colour under a fully transparent pixel survives too
    write_image(tmp_path / "l.webp", Image(src / np.float32(255)), lossless=True)
    back = read_image(tmp_path / "l.webp")
    assert back.source_format == "WEBP" and np.array_equal(_as8(back), src)


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
    src = _rand16((4, 5, 3))
    write_image(path, Image(src / np.float32(65535), bit_depth=16))
    assert np.array_equal(_as16(read_image(path)), src)
    write_image(folder / "фото.jpg", Image(src / np.float32(65535)))
    assert read_image(folder / "фото.jpg").size == (5, 4)


# --------------------------------------------------------------------------------------------
# Orientation and metadata
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_matches_pillow_exif_transpose(tmp_path: Path, orientation: int) -> None:
    src = _rand8((5, 7, 3))
    PILImage.fromarray(src).save(tmp_path / "o.png", exif=_exif(orientation))
    with PILImage.open(tmp_path / "o.png") as pil:
        expected = np.asarray(ImageOps.exif_transpose(pil))
    img = read_image(tmp_path / "o.png")
    assert np.array_equal(_as8(img), expected)
    assert _parse_exif(img.exif).get(0x0112) == 1


def test_jpeg_orientation_6_applied_and_reset(tmp_path: Path) -> None:
    src = np.zeros((16, 32, 3), np.uint8)
    src[:, :16] = (255, 0, 0)  # left half red, right half blue
    src[:, 16:] = (0, 0, 255)
    PILImage.fromarray(src).save(tmp_path / "r.jpg", exif=_exif(6), quality=100)
    img = read_image(tmp_path / "r.jpg")
    assert img.size == (16, 32)  # rotated 90° clockwise: the left half is now on top
    top, bottom = _as8(img)[4, 8], _as8(img)[28, 8]
    assert top[0] > 200 and top[2] < 60 and bottom[2] > 200 and bottom[0] < 60
    exif = _parse_exif(img.exif)
    assert exif[0x0112] == 1 and exif[271] == "jdsr-camera"
    assert exif.get_ifd(0x8769)[36867] == "2021:02:03 04:05:06"
    write_image(tmp_path / "out.jpg", img)
    with PILImage.open(tmp_path / "out.jpg") as pil:
        assert pil.size == (16, 32)
        assert pil.getexif()[0x0112] == 1
        assert pil.getexif().get_ifd(0x8769)[36867] == "2021:02:03 04:05:06"


def test_write_resets_a_stale_orientation(tmp_path: Path) -> None:
    img = Image(np.zeros((2, 3, 3)), exif=_exif(8))
    write_image(tmp_path / "s.png", img)
    with PILImage.open(tmp_path / "s.png") as pil:
        pil.load()
        assert pil.getexif()[0x0112] == 1 and pil.size == (3, 2)


def test_orientation_on_16bit_png(tmp_path: Path) -> None:
    src = _rand16((3, 5, 3))
    with open(tmp_path / "o16.png", "wb") as handle:
        png_encoder.encode_png(handle, src, icc=None, exif=_exif(6))
    img = read_image(tmp_path / "o16.png")
    assert img.bit_depth == 16
    assert np.array_equal(_as16(img), np.rot90(src, -1))
    assert _parse_exif(img.exif)[0x0112] == 1


def test_orientation_on_16bit_tiff(tmp_path: Path) -> None:
    tifffile = pytest.importorskip("tifffile")
    src = _rand16((3, 5, 3))
    buf = io.BytesIO()
    tifffile.imwrite(buf, src, photometric="rgb", extratags=[(274, "H", 1, 8, True)])
    (tmp_path / "o.tif").write_bytes(buf.getvalue())
    img = read_image(tmp_path / "o.tif")
    assert img.bit_depth == 16
    assert np.array_equal(_as16(img), np.rot90(src, 1))


@pytest.mark.parametrize(
    ("suffix", "depth", "kwargs"),
    [
        (".png", 8, {}),
        (".png", 16, {}),
        (".jpg", 8, {}),
        (".webp", 8, {}),
        (".webp", 8, {"lossless": True}),
        (".tiff", 8, {}),
        (".tiff", 16, {}),
    ],
)
def test_icc_and_exif_round_trip_and_strip(tmp_path: Path, suffix: str, depth: int, kwargs: dict) -> None:
    img = Image(RNG.random((6, 7, 3)), bit_depth=depth, icc_profile=SRGB, exif=_exif(1))
    write_image(tmp_path / f"m{suffix}", img, **kwargs)
    back = read_image(tmp_path / f"m{suffix}")
    assert back.bit_depth == depth
    assert back.icc_profile == SRGB
    exif = _parse_exif(back.exif)
    assert exif[271] == "jdsr-camera" and exif.get(0x0112, 1) == 1
    assert exif.get_ifd(0x8769)[36867] == "2021:02:03 04:05:06"

    write_image(tmp_path / f"s{suffix}", back, strip_metadata=True, **kwargs)
    stripped = read_image(tmp_path / f"s{suffix}")
    assert stripped.icc_profile is None and stripped.exif is None


def test_mismatched_icc_is_not_embedded(tmp_path: Path) -> None:
    img = Image(np.zeros((3, 3, 1)), icc_profile=SRGB)  # an RGB profile on gray pixels
    write_image(tmp_path / "g.png", img)
    assert read_image(tmp_path / "g.png").icc_profile is None


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
def test_corrupt_exif_does_not_fail_the_read(tmp_path: Path) -> None:
    PILImage.new("RGB", (3, 2)).save(tmp_path / "e.jpg", exif=b"Exif\x00\x00MM\x00*garbage")
    img = read_image(tmp_path / "e.jpg")
    assert img.size == (3, 2)


# --------------------------------------------------------------------------------------------
# Read errors and limits
# --------------------------------------------------------------------------------------------


def _png_bytes(size: tuple[int, int] = (64, 64)) -> bytes:
    buf = io.BytesIO()
    PILImage.fromarray(_rand8((size[1], size[0], 3))).save(buf, "PNG")
    return buf.getvalue()


def _jpeg_bytes() -> bytes:
    buf = io.BytesIO()
    PILImage.fromarray(_rand8((64, 64, 3))).save(buf, "JPEG", quality=90)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("empty.png", b"", "empty"),
        ("trunc.png", _png_bytes()[:-2000], "truncated"),
        ("trunc.jpg", _jpeg_bytes()[: len(_jpeg_bytes()) // 2], "truncated"),
        ("text.png", b"hello, I am not an image\n" * 10, "not a recognised image"),
        ("noise.jpg", bytes(RNG.integers(0, 256, 4096, dtype=np.uint8)), "not a recognised image"),
        ("header_only.png", _png_bytes()[:60], ""),
        ("bad_idat.png", _png_bytes()[:100] + b"\x00" * 50 + _png_bytes()[150:], ""),
    ],
)
def test_bad_inputs_raise_read_error(tmp_path: Path, name: str, content: bytes, reason: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    message = str(info.value)
    assert message.startswith(str(path)) and "\n" not in message
    assert reason in message


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError, match="no such file") as info:
        read_image(tmp_path / "nope.png")
    assert str(tmp_path / "nope.png") in str(info.value)
    with pytest.raises(ImageReadError, match="folder"):
        read_image(tmp_path)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads anything")
def test_permission_denied(tmp_path: Path) -> None:
    path = tmp_path / "locked.png"
    path.write_bytes(_png_bytes((4, 4)))
    path.chmod(0)
    try:
        with pytest.raises(ImageReadError, match="permission denied"):
            read_image(path)
    finally:
        path.chmod(0o600)


def test_permission_errors_are_reported_even_as_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same mapping as the skip-if-root tests, with the OS errors simulated."""
    import jdsr_cli.io.atomic as atomic

    def denied(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise PermissionError(13, "Permission denied")

    with monkeypatch.context() as patch:
        patch.setattr(Path, "read_bytes", denied)
        with pytest.raises(ImageReadError, match=r"x\.png: permission denied"):
            read_image(tmp_path / "x.png")
    monkeypatch.setattr(atomic.tempfile, "mkstemp", denied)
    with pytest.raises(ImageWriteError, match=r"y\.png: cannot write: Permission denied"):
        write_image(tmp_path / "y.png", Image(np.zeros((2, 2, 3))))


def test_decompression_bomb_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "big.png"
    path.write_bytes(_png_bytes((30, 20)))  # 600 pixels
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 500)
    with pytest.raises(ImageReadError, match="--max-pixels") as info:
        read_image(path)
    assert str(path) in str(info.value) and "600" in str(info.value)
    assert read_image(path, max_pixels=600).size == (30, 20)
    assert read_image(path, max_pixels=0).size == (30, 20)
    with pytest.raises(ImageReadError):
        read_image(path, max_pixels=599)
    assert PILImage.MAX_IMAGE_PIXELS == 500  # the global is left as it was


def test_default_limit_is_pillows(tmp_path: Path) -> None:
    assert PILImage.MAX_IMAGE_PIXELS is not None  # nothing in the package turned it off
    path = tmp_path / "ok.png"
    path.write_bytes(_png_bytes((8, 8)))
    read_image(path)
    assert PILImage.MAX_IMAGE_PIXELS == int(1024 * 1024 * 1024 // 4 // 3)


def test_decode_image_from_memory() -> None:
    img = decode_image(_png_bytes((5, 4)), name="mem")
    assert img.size == (5, 4)
    with pytest.raises(ImageReadError, match="^mem: "):
        decode_image(b"\x00" * 10, name="mem")


def test_float_tiff_and_unsupported_tiff_layout(tmp_path: Path) -> None:
    tifffile = pytest.importorskip("tifffile")
    buf = io.BytesIO()
    tifffile.imwrite(buf, np.array([[[0.0, 0.5, 2.0]]], dtype=np.float32), photometric="rgb")
    (tmp_path / "f.tif").write_bytes(buf.getvalue())
    img = read_image(tmp_path / "f.tif")
    assert img.bit_depth == 16 and img.pixels[0, 0].tolist() == [0.0, 0.5, 1.0]

    buf = io.BytesIO()
    tifffile.imwrite(buf, _rand16((3, 4, 2)), photometric="minisblack", extrasamples=["unassalpha"])
    (tmp_path / "la16.tif").write_bytes(buf.getvalue())
    with pytest.raises(ImageReadError, match="unsupported TIFF layout"):
        read_image(tmp_path / "la16.tif")  # rather than OpenCV's silent 8-bit gray without alpha


# --------------------------------------------------------------------------------------------
# Write errors, formats, atomicity
# --------------------------------------------------------------------------------------------


def test_output_format_resolution(tmp_path: Path) -> None:
    assert resolve_output_format("a.JPG") == "jpeg"
    assert resolve_output_format("a.tif") == "tiff"
    assert resolve_output_format("a.png", "webp") == "webp"
    img = Image(np.zeros((2, 2, 3)))
    with pytest.raises(ImageWriteError, match="out.xyz"):
        write_image(tmp_path / "out.xyz", img)
    with pytest.raises(ImageWriteError, match="no file extension"):
        write_image(tmp_path / "out", img)
    with pytest.raises(ImageWriteError, match="unsupported output format"):
        write_image(tmp_path / "out.png", img, format="jxl")
    write_image(tmp_path / "noext", img, format="jpg")
    assert PILImage.open(tmp_path / "noext").format == "JPEG"


def test_alpha_to_jpeg_and_bmp(tmp_path: Path) -> None:
    assert format_supports_alpha("png") and format_supports_alpha("webp") and format_supports_alpha("tiff")
    assert not format_supports_alpha("jpeg") and not format_supports_alpha("bmp")
    rgba = np.ones((4, 4, 4), np.float32)
    write_image(tmp_path / "opaque.jpg", Image(rgba))  # fully opaque: alpha dropped losslessly
    assert PILImage.open(tmp_path / "opaque.jpg").mode == "RGB"
    rgba[0, 0, 3] = 0.5
    for name in ("t.jpg", "t.bmp"):
        with pytest.raises(ImageWriteError, match="transparency"):
            write_image(tmp_path / name, Image(rgba))
        assert not (tmp_path / name).exists()
    write_image(tmp_path / "t.jpg", Image(rgba).without_alpha())


def test_invalid_options(tmp_path: Path) -> None:
    img = Image(np.zeros((2, 2, 3)))
    with pytest.raises(ImageWriteError, match="losslessly"):
        write_image(tmp_path / "a.jpg", img, lossless=True)
    with pytest.raises(UsageError):
        write_image(tmp_path / "a.jpg", img, quality=0)
    with pytest.raises(UsageError):
        write_image(tmp_path / "a.png", img, bit_depth=12)
    with pytest.raises(ValueError):
        Image(np.zeros((2, 2, 5)))
    with pytest.raises(ValueError):
        Image(np.zeros((2, 2, 3)), bit_depth=10)


def test_unwritable_destinations(tmp_path: Path) -> None:
    img = Image(np.zeros((2, 2, 3)))
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    target = blocker / "out.png"
    with pytest.raises(ImageWriteError, match="is not a folder") as info:
        write_image(target, img)
    assert str(target) in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(ImageWriteError, match="does not exist"):
        write_image(tmp_path / "missing" / "out.png", img)
    assert not (tmp_path / "missing").exists()  # parent folders are the caller's job
    (tmp_path / "adir.png").mkdir()
    with pytest.raises(ImageWriteError, match="adir.png"):
        write_image(tmp_path / "adir.png", img)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores permissions")
def test_read_only_folder(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(ImageWriteError, match="ermission"):
            write_image(folder / "out.png", Image(np.zeros((2, 2, 3))))
    finally:
        folder.chmod(0o700)


@pytest.mark.parametrize("target", ["encode_pillow", "encode_png", "encode_tiff"])
def test_failed_encoding_keeps_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: str
) -> None:
    cases = {"encode_pillow": (".png", 8), "encode_png": (".png", 16), "encode_tiff": (".tif", 8)}
    suffix, depth = cases[target]
    path = tmp_path / f"keep{suffix}"
    path.write_bytes(b"previous content")

    def broken(handle, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        handle.write(b"partial")
        raise RuntimeError("encoder exploded")

    module = {"encode_pillow": encoders, "encode_png": png_encoder, "encode_tiff": tiff_codec}[target]
    monkeypatch.setattr(module, target, broken)
    with pytest.raises(ImageWriteError, match="encoder exploded"):
        write_image(path, Image(np.zeros((2, 2, 3)), bit_depth=depth))
    assert path.read_bytes() == b"previous content"
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_write_replaces_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "x.png"
    path.write_bytes(b"old")
    write_image(path, Image(np.zeros((2, 2, 3))))
    assert PILImage.open(path).size == (2, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.png"]


def test_own_png_encoder_chunks_are_valid(tmp_path: Path) -> None:
    """Every chunk's CRC checks out and iCCP/eXIf come before the image data."""
    img = Image(RNG.random((3, 3, 3)), bit_depth=16, icc_profile=SRGB, exif=_exif(1))
    write_image(tmp_path / "c.png", img)
    data = (tmp_path / "c.png").read_bytes()
    pos, kinds = 8, []
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        assert int.from_bytes(data[pos + 8 + length : pos + 12 + length], "big") == zlib.crc32(kind + body)
        kinds.append(kind)
        pos += 12 + length
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND"
    assert kinds.index(b"iCCP") < kinds.index(b"IDAT") and kinds.index(b"eXIf") < kinds.index(b"IDAT")


@pytest.mark.parametrize("depth", [8, 16])
def test_png_is_compressed_at_the_fast_default_level(tmp_path: Path, depth: int) -> None:
    """Both PNG encoders (Pillow at 8 bits, ours at 16) use PNG_COMPRESS_LEVEL 4: the zlib header of the first
    IDAT says 'fast' (levels 2-5), not 'default' (6), which wrote 2.3x slower for 2 % fewer bytes."""
    from jdsr_cli.io.png_encoder import PNG_COMPRESS_LEVEL

    write_image(tmp_path / "c.png", Image(RNG.random((40, 50, 3)).astype(np.float32), bit_depth=depth), bit_depth=depth)
    data = (tmp_path / "c.png").read_bytes()
    start = data.index(b"IDAT") + 4
    assert PNG_COMPRESS_LEVEL == 4 and data[start] & 0x0F == 8 and data[start + 1] >> 6 == 1  # FLEVEL 1: levels 2-5


# --------------------------------------------------------------------------------------------
# Real images
# --------------------------------------------------------------------------------------------


@pytest.mark.data
def test_real_images(data_dir: Path, tmp_path: Path) -> None:
    hr = data_dir / "benchmark" / "Set14" / "HR"
    bridge = read_image(hr / "bridge.png")
    assert bridge.is_gray and bridge.channels == 1 and bridge.bit_depth == 8
    baby = read_image(data_dir / "benchmark" / "Set5" / "HR" / "baby.png")
    assert baby.channels == 3 and baby.bit_depth == 8
    write_image(tmp_path / "baby16.png", baby, bit_depth=16)
    again = read_image(tmp_path / "baby16.png")
    assert again.bit_depth == 16 and np.array_equal(again.pixels, baby.pixels)
