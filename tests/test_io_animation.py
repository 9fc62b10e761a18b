"""Animated GIF / APNG / WebP: every frame read as a viewer shows it; animations written back alike."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from jdsr_cli.errors import ImageReadError, ImageWriteError
from jdsr_cli.io.animation import Animation, decode_frames, frame_count, read_frames, write_animation
from jdsr_cli.io.image import Image, read_image


def _frames(count: int = 5, alpha: bool = True, size: tuple[int, int] = (56, 40)) -> list[Image]:
    """Moving gradients (different every frame) with a moving on/off alpha pattern."""
    y, x = np.mgrid[0 : size[1], 0 : size[0]]
    out = []
    for i in range(count):
        rgb = np.stack([(x + 7 * i) % size[0] / (size[0] - 1), y / (size[1] - 1), np.full(x.shape, i / count)], 2)
        planes = [rgb] + ([((x + y + 5 * i) % 17 > 4)[..., None]] if alpha else [])
        out.append(Image(np.concatenate(planes, axis=2).astype(np.float32)))
    return out


def _visible_error(back: Image, ref: Image) -> np.ndarray:
    """|difference| over the pixels the reference shows (alpha at least half), all channels."""
    shown = ref.pixels[..., 3] >= 0.5 if ref.has_alpha else np.ones(ref.pixels.shape[:2], bool)
    return np.abs(back.pixels - ref.pixels)[shown]


CASES = [("gif", {}, 0.06), ("png", {}, 0.5 / 255 + 1e-6), ("webp", {"lossless": True}, 0.5 / 255 + 1e-6),
         ("webp", {"quality": 90}, None)]


@pytest.mark.parametrize(("fmt", "params", "tolerance"), CASES)
@pytest.mark.parametrize("alpha", [True, False])
def test_round_trip_keeps_frames_durations_and_loop(
    tmp_path: Path, fmt: str, params: dict, tolerance: float | None, alpha: bool
) -> None:
    frames = _frames(alpha=alpha)
    anim = Animation(frames, [40, 50, 60, 70, 120], loop=3)
    path = tmp_path / f"a.{fmt}"
    write_animation(path, anim, **params)
    assert frame_count(path) == 5
    back = read_frames(path)
    assert isinstance(back, Animation)
    assert len(back.frames) == 5 and back.durations_ms == [40, 50, 60, 70, 120] and back.loop == 3
    assert back.source_format == {"gif": "GIF", "png": "PNG", "webp": "WEBP"}[fmt]
    assert back.warnings == () and back.size == (56, 40)
    for got, ref in zip(back.frames, frames, strict=True):
        assert got.channels == ref.channels
        if ref.has_alpha:
            assert np.array_equal(got.alpha >= 0.5, ref.alpha >= 0.5)
        error = _visible_error(got, ref)
        if tolerance is None:  # lossy WebP: close on average
            assert error.mean() < 0.03
        else:
            assert error.max() <= tolerance


@pytest.mark.parametrize("fmt", ["gif", "png", "webp"])
@pytest.mark.parametrize("loop", [0, 1, 2])
def test_loop_values(tmp_path: Path, fmt: str, loop: int) -> None:
    path = tmp_path / f"l.{fmt}"
    write_animation(path, Animation(_frames(2), [100, 100], loop=loop))
    assert read_frames(path).loop == loop


def test_gif_loop_semantics(tmp_path: Path) -> None:
    """No NETSCAPE block: plays once; NETSCAPE count n: n + 1 plays; 0: forever."""
    frames = [PILImage.new("RGB", (4, 4), c) for c in ("red", "blue")]
    for stored, plays in [(None, 1), (0, 0), (1, 2), (4, 5)]:
        buf = io.BytesIO()
        extra = {} if stored is None else {"loop": stored}
        frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100, **extra)
        assert decode_frames(buf.getvalue()).loop == plays


def test_frames_are_composited_like_a_viewer(tmp_path: Path) -> None:
    """The written GIF stores later frames as small changed rectangles; reading gives full frames."""
    base = np.zeros((30, 40, 3), np.float32)
    frames = []
    for i in range(4):
        frame = base.copy()
        frame[5 : 10, 5 * i : 5 * i + 5] = 1.0  # a white square moving right
        frames.append(Image(frame))
    path = tmp_path / "m.gif"
    write_animation(path, Animation(frames, [100] * 4, loop=0))
    with PILImage.open(path) as pil:
        pil.seek(2)
        extents = pil.tile[0][1]
    assert extents != (0, 0, 40, 30)  # a partial frame, so compositing was needed
    back = read_frames(path)
    for got, ref in zip(back.frames, frames, strict=True):
        assert np.array_equal(got.pixels, ref.pixels)


def test_identical_successive_frames_are_merged_by_the_encoders(tmp_path: Path) -> None:
    frames = _frames(3, alpha=False)
    frames.insert(1, frames[0])
    for fmt in ("gif", "png", "webp"):
        write_animation(tmp_path / f"d.{fmt}", Animation(frames, [100, 100, 100, 100], loop=0), lossless=fmt == "webp")
        back = read_frames(tmp_path / f"d.{fmt}")
        assert back.durations_ms == [200, 100, 100] and back.total_duration_ms == 400, fmt


def test_still_files_come_back_as_images(tmp_path: Path) -> None:
    PILImage.new("RGB", (6, 4), "red").save(tmp_path / "s.gif")
    PILImage.new("RGB", (6, 4), "red").save(tmp_path / "s.png")
    for name in ("s.gif", "s.png"):
        assert frame_count(tmp_path / name) == 1
        result = read_frames(tmp_path / name)
        assert isinstance(result, Image) and result.size == (6, 4)


def test_an_unreadable_file_is_named_in_the_error(tmp_path: Path) -> None:
    """The error names the user's file, not an internal "<bytes>" placeholder."""
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    with pytest.raises(ImageReadError, match=r"^.*bad\.jpg: not a recognised image format"):
        read_frames(tmp_path / "bad.jpg")


def test_multi_page_tiff_is_not_an_animation(tmp_path: Path) -> None:
    pages = [PILImage.new("RGB", (6, 4), c) for c in ("red", "blue")]
    pages[0].save(tmp_path / "p.tif", save_all=True, append_images=pages[1:])
    assert frame_count(tmp_path / "p.tif") == 1 and isinstance(read_frames(tmp_path / "p.tif"), Image)


def test_read_image_still_reads_the_first_frame(tmp_path: Path) -> None:
    frames = _frames(3, alpha=False)
    write_animation(tmp_path / "f.png", Animation(frames, [10, 10, 10], loop=0))
    first = read_image(tmp_path / "f.png")
    assert np.abs(first.pixels - frames[0].pixels).max() <= 0.5 / 255 + 1e-6


def test_pixel_limit_counts_every_frame(tmp_path: Path) -> None:
    path = tmp_path / "bomb.gif"
    write_animation(path, Animation(_frames(5, alpha=False), [10] * 5, loop=0))  # 5 x 56 x 40 = 11,200 pixels
    with pytest.raises(ImageReadError, match=r"bomb\.gif: 5 frames of 56x40 = 11,200 pixels exceeds .*--max-pixels 11200"):
        read_frames(path, max_pixels=10_000)
    assert len(read_frames(path, max_pixels=11_200).frames) == 5


def test_truncated_gif_reports_missing_frames(tmp_path: Path) -> None:
    path = tmp_path / "t.gif"
    write_animation(path, Animation(_frames(4, alpha=False), [10] * 4, loop=0))
    data = path.read_bytes()
    starts, pos = [], 0
    while (pos := data.find(b"\x21\xf9\x04", pos + 1)) > 0:  # each frame's graphic control extension
        starts.append(pos)
    cut = data[: starts[2]]  # two whole frames, no trailer
    assert frame_count(cut) == 2
    result = decode_frames(cut, name="t.gif")
    assert len(result.frames) == 2 and result.warnings and "truncated GIF" in result.warnings[0]
    with pytest.raises(ImageReadError, match="^t.gif: truncated GIF"):
        decode_frames(cut, name="t.gif", strict=True)


def test_durations_rounded_to_gif_units(tmp_path: Path) -> None:
    write_animation(tmp_path / "r.gif", Animation(_frames(3, alpha=False), [33, 45, 47], loop=0))
    assert read_frames(tmp_path / "r.gif").durations_ms == [30, 50, 50]


def test_write_errors(tmp_path: Path) -> None:
    anim = Animation(_frames(2), [10, 10], loop=0)
    with pytest.raises(ImageWriteError, match=r"a\.jpg: cannot write an animation as JPEG"):
        write_animation(tmp_path / "a.jpg", anim)
    with pytest.raises(ImageWriteError, match="GIF cannot be saved losslessly"):
        write_animation(tmp_path / "a.gif", anim, lossless=True)
    with pytest.raises(ImageWriteError, match="does not exist"):
        write_animation(tmp_path / "missing" / "a.gif", anim)
    (tmp_path / "keep.webp").write_bytes(b"previous")
    with pytest.raises(ImageWriteError):
        write_animation(tmp_path / "keep.webp", Animation([Image(np.zeros((20000, 2, 3)))], [10]))
    assert (tmp_path / "keep.webp").read_bytes() == b"previous"


def test_animation_validation() -> None:
    frames = _frames(2)
    with pytest.raises(ValueError, match="durations"):
        Animation(frames, [10])
    with pytest.raises(ValueError, match="size"):
        Animation([frames[0], Image(np.zeros((3, 3, 4)))], [10, 10])
    with pytest.raises(ValueError):
        Animation([], [])


def test_metadata_of_the_first_frame_is_kept(tmp_path: Path) -> None:
    from PIL import ImageCms

    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = PILImage.Exif()
    exif[271] = "jdsr-camera"
    frames = _frames(2)
    frames[0].icc_profile, frames[0].exif = srgb, exif.tobytes()
    for fmt in ("png", "webp"):
        write_animation(tmp_path / f"m.{fmt}", Animation(frames, [10, 20], loop=0))
        first = read_frames(tmp_path / f"m.{fmt}").frames[0]
        assert first.icc_profile == srgb, fmt
        write_animation(tmp_path / f"s.{fmt}", Animation(frames, [10, 20], loop=0), strip_metadata=True)
        assert read_frames(tmp_path / f"s.{fmt}").frames[0].icc_profile is None
