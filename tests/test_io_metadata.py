"""Image reading and writing: EXIF orientation, ICC profiles and EXIF metadata."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from PIL import ImageOps

from jdsr_cli.io import png_encoder
from jdsr_cli.io.image import Image, read_image, write_image
from tests.helpers.imagefiles import RNG, SRGB, as8, as16, exif_bytes, parse_exif, rand8, rand16


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_matches_pillow_exif_transpose(tmp_path: Path, orientation: int) -> None:
    src = rand8((5, 7, 3))
    PILImage.fromarray(src).save(tmp_path / "o.png", exif=exif_bytes(orientation))
    with PILImage.open(tmp_path / "o.png") as pil:
        expected = np.asarray(ImageOps.exif_transpose(pil))
    img = read_image(tmp_path / "o.png")
    assert np.array_equal(as8(img), expected)
    assert parse_exif(img.exif).get(0x0112) == 1


def test_jpeg_orientation_6_applied_and_reset(tmp_path: Path) -> None:
    src = np.zeros((16, 32, 3), np.uint8)
    src[:, :16] = (255, 0, 0)  # left half red, right half blue
    src[:, 16:] = (0, 0, 255)
    PILImage.fromarray(src).save(tmp_path / "r.jpg", exif=exif_bytes(6), quality=100)
    img = read_image(tmp_path / "r.jpg")
    assert img.size == (16, 32)  # rotated 90° clockwise: the left half is now on top
    top, bottom = as8(img)[4, 8], as8(img)[28, 8]
    assert top[0] > 200 and top[2] < 60 and bottom[2] > 200 and bottom[0] < 60
    exif = parse_exif(img.exif)
    assert exif[0x0112] == 1 and exif[271] == "jdsr-camera"
    assert exif.get_ifd(0x8769)[36867] == "2021:02:03 04:05:06"
    write_image(tmp_path / "out.jpg", img)
    with PILImage.open(tmp_path / "out.jpg") as pil:
        assert pil.size == (16, 32)
        assert pil.getexif()[0x0112] == 1
        assert pil.getexif().get_ifd(0x8769)[36867] == "2021:02:03 04:05:06"


def test_write_resets_a_stale_orientation(tmp_path: Path) -> None:
    img = Image(np.zeros((2, 3, 3)), exif=exif_bytes(8))
    write_image(tmp_path / "s.png", img)
    with PILImage.open(tmp_path / "s.png") as pil:
        pil.load()
        assert pil.getexif()[0x0112] == 1 and pil.size == (3, 2)


def test_orientation_on_16bit_png(tmp_path: Path) -> None:
    src = rand16((3, 5, 3))
    with open(tmp_path / "o16.png", "wb") as handle:
        png_encoder.encode_png(handle, src, icc=None, exif=exif_bytes(6))
    img = read_image(tmp_path / "o16.png")
    assert img.bit_depth == 16
    assert np.array_equal(as16(img), np.rot90(src, -1))
    assert parse_exif(img.exif)[0x0112] == 1


def test_orientation_on_16bit_tiff(tmp_path: Path) -> None:
    tifffile = pytest.importorskip("tifffile")
    src = rand16((3, 5, 3))
    buf = io.BytesIO()
    tifffile.imwrite(buf, src, photometric="rgb", extratags=[(274, "H", 1, 8, True)])
    (tmp_path / "o.tif").write_bytes(buf.getvalue())
    img = read_image(tmp_path / "o.tif")
    assert img.bit_depth == 16
    assert np.array_equal(as16(img), np.rot90(src, 1))


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
    img = Image(RNG.random((6, 7, 3)), bit_depth=depth, icc_profile=SRGB, exif=exif_bytes(1))
    write_image(tmp_path / f"m{suffix}", img, **kwargs)
    back = read_image(tmp_path / f"m{suffix}")
    assert back.bit_depth == depth
    assert back.icc_profile == SRGB
    exif = parse_exif(back.exif)
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
