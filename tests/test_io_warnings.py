"""Decoder warnings: damaged files that still decode say so (Image.warnings), or fail with strict=True.

The fuzz tests corrupt real images in memory (nothing is copied into the repository). The oracle:
every decode either raises ImageReadError, or returns the clean pixels, or carries a warning. It holds
for what a format can detect: any damage to a PNG (every chunk has a CRC) and truncation of any
format. JPEG, GIF and WebP carry no checksum: a changed byte inside their compressed data can decode
to a valid, different picture that no decoder can flag. For JPEG the test checks instead that every
complaint of an independent libjpeg-turbo (OpenCV's, which prints to stderr) reaches the Image.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image as PILImage

from jdsr_cli.errors import ImageReadError
from jdsr_cli.io.image import Image, decode_image, read_image

RNG_SEED = 20240613


def _encode(image: PILImage.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **params)
    return buf.getvalue()


def _synthetic(size: tuple[int, int] = (96, 80)) -> PILImage.Image:
    """A smooth image with detail (noise on gradients), so compressed streams are realistic."""
    rng = np.random.default_rng(3)
    y, x = np.mgrid[0 : size[1], 0 : size[0]]
    base = np.stack([x * 255 / size[0], y * 255 / size[1], (x + y) * 127 / sum(size)], axis=2)
    return PILImage.fromarray(np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8))


def _png_chunks(data: bytes) -> list[tuple[bytes, int, int]]:
    """(type, start of the length field, end of the CRC) of each chunk."""
    pos, out = 8, []
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        out.append((data[pos + 4 : pos + 8], pos, pos + 12 + length))
        pos += 12 + length
    return out


def _outcome(data: bytes, clean: Image) -> str:
    """'raised', 'same' (the clean pixels, warnings or not), 'warned' or 'SILENT' (damage, no word)."""
    try:
        image = decode_image(data, name="fuzz")
    except ImageReadError:
        return "raised"
    if image.pixels.shape == clean.pixels.shape and np.array_equal(image.pixels, clean.pixels):
        return "same"
    return "warned" if image.warnings else "SILENT"


def _mutations(data: bytes, rng: np.random.Generator, count: int, start: int) -> list[tuple[str, bytes]]:
    """Truncations, bit flips, random 16-byte runs and removed slices, all after byte ``start``."""
    out = []
    for i in range(count):
        d = bytearray(data)
        kind = ("truncate", "flip", "run", "cut")[i % 4]
        pos = int(rng.integers(start, len(d) - 17))
        if kind == "truncate":
            d = d[:pos]
        elif kind == "flip":
            d[pos] ^= 1 << int(rng.integers(8))
        elif kind == "run":
            d[pos : pos + 16] = rng.integers(0, 256, 16, dtype=np.uint8).tobytes()
        else:
            del d[pos : pos + int(rng.integers(1, 64))]
        out.append((kind, bytes(d)))
    return out


# --------------------------------------------------------------------------------------------
# Targeted cases (no shared data needed)
# --------------------------------------------------------------------------------------------


def test_clean_files_have_no_warnings() -> None:
    src = _synthetic()
    for fmt, params in [("PNG", {}), ("JPEG", {"quality": 90}), ("JPEG", {"progressive": True}),
                        ("WEBP", {}), ("GIF", {}), ("TIFF", {}), ("BMP", {})]:
        assert decode_image(_encode(src, fmt, **params)).warnings == (), fmt
    assert decode_image(_encode(src.convert("CMYK"), "JPEG")).warnings == ()
    assert decode_image(_encode(src.convert("L"), "JPEG")).warnings == ()


def test_bad_png_crc_is_a_warning_and_strict_refuses(tmp_path: Path) -> None:
    data = bytearray(_encode(_synthetic(), "PNG"))
    kind, _, end = next(c for c in _png_chunks(bytes(data)) if c[0] == b"IDAT")
    data[end - 1] ^= 0xFF  # the IDAT's CRC itself: Pillow never checks it, the pixels are intact
    path = tmp_path / "crc.png"
    path.write_bytes(bytes(data))
    image = read_image(path)
    assert len(image.warnings) == 1 and image.warnings[0].startswith("damaged PNG: bad CRC in chunk IDAT")
    assert "\n" not in image.warnings[0]
    with pytest.raises(ImageReadError, match=r"crc\.png: damaged PNG: bad CRC in chunk IDAT.*\(strict mode\)$"):
        read_image(path, strict=True)


def test_png_without_iend_is_a_warning() -> None:
    data = _encode(_synthetic(), "PNG")
    assert decode_image(data[:-12]).warnings == ("truncated PNG: no IEND chunk (the end of the file is missing)",)
    assert "runs past the end" in decode_image(data[:-3]).warnings[0]


def test_corrupt_jpeg_data_is_reported_with_libjpegs_words() -> None:
    data = bytearray(_encode(_synthetic((256, 256)), "JPEG", quality=90))
    del data[len(data) // 2 : len(data) // 2 + 300]  # a slice of the entropy-coded data goes missing
    image = decode_image(bytes(data), name="cut.jpg")
    assert image.warnings == ("corrupt JPEG data: premature end of data segment",)
    with pytest.raises(ImageReadError, match="^cut.jpg: corrupt JPEG data: premature end of data segment"):
        decode_image(bytes(data), name="cut.jpg", strict=True)


def test_extraneous_jpeg_bytes_are_reported() -> None:
    data = _encode(_synthetic(), "JPEG", quality=90)
    assert data.endswith(b"\xff\xd9")
    padded = data[:-2] + b"\x13\x37" * 20 + b"\xff\xd9"
    # libjpeg counts the junk it has not already pulled into its bit buffer
    assert re.fullmatch(r"corrupt JPEG data: \d+ extraneous bytes before marker 0xd9", decode_image(padded).warnings[0])


def test_gif_without_trailer_is_a_warning() -> None:
    data = _encode(_synthetic(), "GIF")
    assert data.endswith(b";")
    image = decode_image(data[:-1])
    assert image.warnings and image.warnings[0].startswith("truncated GIF")


def test_corrupt_exif_is_a_warning_not_a_failure() -> None:
    data = _encode(PILImage.new("RGB", (3, 2)), "JPEG", exif=b"Exif\x00\x00MM\x00*garbage")
    image = decode_image(data)
    assert image.size == (3, 2) and image.exif is None
    assert any("EXIF" in w for w in image.warnings)


def test_strict_passes_clean_files(tmp_path: Path) -> None:
    path = tmp_path / "ok.jpg"
    path.write_bytes(_encode(_synthetic(), "JPEG"))
    assert read_image(path, strict=True).warnings == ()


def test_warnings_never_reach_python_warnings(recwarn: pytest.WarningsRecorder) -> None:
    decode_image(_encode(PILImage.new("RGB", (3, 2)), "JPEG", exif=b"Exif\x00\x00MM\x00*garbage"))
    assert not [w for w in recwarn if "EXIF" in str(w.message)]


def test_image_warnings_field() -> None:
    assert Image(np.zeros((2, 2, 3))).warnings == ()
    assert Image(np.zeros((2, 2, 3)), warnings=["a"]).warnings == ("a",)


# --------------------------------------------------------------------------------------------
# Fuzzing real images
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_images(data_dir: Path) -> list[PILImage.Image]:
    bench = data_dir / "benchmark"
    names = [bench / "Set5" / "HR" / "bird.png", bench / "Set5" / "HR" / "butterfly.png",
             bench / "Set14" / "HR" / "bridge.png"]
    return [PILImage.open(path).crop((0, 0, 160, 128)) for path in names]  # bridge is gray (mode L)


@pytest.mark.data
def test_fuzz_png_every_damage_is_raised_or_reported(real_images: list[PILImage.Image]) -> None:
    rng = np.random.default_rng(RNG_SEED)
    counts: dict[str, int] = {}
    for image in real_images:
        for level in (1, 9):
            data = _encode(image, "PNG", compress_level=level)
            clean = decode_image(data)
            cases = _mutations(data, rng, 24, start=33)  # after the IHDR chunk
            for _, idat_start, idat_end in [c for c in _png_chunks(data) if c[0] in (b"IDAT", b"IEND")][:2]:
                broken = bytearray(data)
                broken[int(rng.integers(idat_start + 8, idat_end))] ^= 0x10  # data or CRC of the chunk
                cases.append(("crc", bytes(broken)))
            for kind, mutated in cases:
                outcome = _outcome(mutated, clean)
                assert outcome != "SILENT", f"PNG {kind}: damaged pixels without a warning"
                counts[outcome] = counts.get(outcome, 0) + 1
    assert counts.get("raised", 0) > 0 and counts.get("same", 0) + counts.get("warned", 0) > 0


@pytest.mark.data
@pytest.mark.parametrize(
    ("fmt", "params"),
    [("JPEG", {"quality": 90}), ("JPEG", {"progressive": True}), ("WEBP", {"quality": 80}),
     ("WEBP", {"lossless": True}), ("GIF", {}), ("TIFF", {"compression": "tiff_deflate"}), ("BMP", {})],
)
def test_fuzz_truncation_is_raised_or_reported(real_images: list[PILImage.Image], fmt: str, params: dict) -> None:
    rng = np.random.default_rng(RNG_SEED)
    for image in real_images:
        data = _encode(image.convert("RGB"), fmt, **params)
        clean = decode_image(data)
        cuts = [len(data) - k for k in (1, 2, 3, 10)] + [int(c) for c in rng.integers(16, len(data), 12)]
        for cut in cuts:
            assert _outcome(data[:cut], clean) != "SILENT", f"{fmt} cut at {cut} of {len(data)}"


@pytest.mark.data
@pytest.mark.parametrize("progressive", [False, True])
def test_fuzz_jpeg_every_libjpeg_complaint_is_surfaced(
    real_images: list[PILImage.Image], progressive: bool, capfd: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(RNG_SEED)
    seen = {"complaint": 0, "silent in libjpeg too": 0}
    for image in real_images:
        data = _encode(image, "JPEG", quality=90, progressive=progressive)
        clean = decode_image(data)
        for kind, mutated in _mutations(data, rng, 24, start=len(data) // 4):
            capfd.readouterr()
            cv2.imdecode(np.frombuffer(mutated, np.uint8), cv2.IMREAD_COLOR)
            complaint = capfd.readouterr().err.strip()
            try:
                warned = bool(decode_image(mutated).warnings)
            except ImageReadError:
                warned = True
            if complaint:
                assert warned, f"{kind}: libjpeg said {complaint!r}, we said nothing"
                seen["complaint"] += 1
            elif _outcome(mutated, clean) == "SILENT":
                seen["silent in libjpeg too"] += 1
    assert seen["complaint"] > 10  # the oracle was exercised


@pytest.mark.data
def test_no_false_alarms_on_the_benchmark_files(data_dir: Path) -> None:
    paths = sorted((data_dir / "benchmark").glob("Set*/**/*.png"))
    assert len(paths) >= 70
    for path in paths:
        assert read_image(path, strict=True).warnings == (), path
