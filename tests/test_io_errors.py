"""Image reading and writing: read errors and limits, write errors, output formats, atomicity."""

from __future__ import annotations

import io
import os
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from jdsr_cli.errors import ImageReadError, ImageWriteError, UsageError
from jdsr_cli.io import encoders, png_encoder, tiff_codec
from jdsr_cli.io.image import (
    Image,
    decode_image,
    format_supports_alpha,
    read_image,
    resolve_output_format,
    write_image,
)
from tests.helpers.imagefiles import RNG, SRGB, exif_bytes, rand8, rand16


def _png_bytes(size: tuple[int, int] = (64, 64)) -> bytes:
    buf = io.BytesIO()
    PILImage.fromarray(rand8((size[1], size[0], 3))).save(buf, "PNG")
    return buf.getvalue()


def _jpeg_bytes() -> bytes:
    buf = io.BytesIO()
    PILImage.fromarray(rand8((64, 64, 3))).save(buf, "JPEG", quality=90)
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


def test_pillow_float_image_on_another_scale_is_refused(tmp_path: Path) -> None:
    gray = rand8((6, 5, 1))[:, :, 0]
    PILImage.fromarray(gray).convert("F").save(tmp_path / "f255.tif")  # Pillow's "F" holds 0..255 here
    with pytest.raises(ImageReadError, match=r"^.*f255.tif: float samples run from \d+ to \d+, not 0..1"):
        read_image(tmp_path / "f255.tif")
    PILImage.fromarray(gray.astype(np.float32) / 255).save(tmp_path / "unit.tif")
    np.testing.assert_allclose(read_image(tmp_path / "unit.tif").pixels[:, :, 0], gray / 255, atol=1e-6)


def test_float_tiff_and_unsupported_tiff_layout(tmp_path: Path) -> None:
    tifffile = pytest.importorskip("tifffile")
    buf = io.BytesIO()
    tifffile.imwrite(buf, np.array([[[-0.1, 0.5, 1.2]]], dtype=np.float32), photometric="rgb")
    (tmp_path / "f.tif").write_bytes(buf.getvalue())
    img = read_image(tmp_path / "f.tif")
    assert img.bit_depth == 16 and img.pixels[0, 0].tolist() == [0.0, 0.5, 1.0]  # editing overshoots are clipped

    buf = io.BytesIO()
    tifffile.imwrite(buf, np.array([[[0.0, 128.0, 255.0]]], dtype=np.float32), photometric="rgb")
    (tmp_path / "f255.tif").write_bytes(buf.getvalue())
    with pytest.raises(ImageReadError, match=r"f255.tif: float samples run from 0 to 255, not 0..1"):
        read_image(tmp_path / "f255.tif")  # rather than a white image

    buf = io.BytesIO()
    tifffile.imwrite(buf, rand16((3, 4, 2)), photometric="minisblack", extrasamples=["unassalpha"])
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
    img = Image(RNG.random((3, 3, 3)), bit_depth=16, icc_profile=SRGB, exif=exif_bytes(1))
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
