"""Animated GIF, APNG and animated WebP: every frame in, an animation of the same format out.

Reading composites each frame as a viewer shows it (disposal and blending applied by Pillow), so
every frame is a full-size image; all frames get the same channels (RGBA if any frame has
transparency, else RGB; gray only when every frame is gray). Frames are 8-bit (Pillow decodes a
16-bit APNG at 8 bits). The pixel limit counts every frame, so a small file with thousands of
frames is refused like a single huge image.

``loop`` is the number of times the animation plays, 0 for forever, whatever the format stores:
a GIF without a NETSCAPE block plays once (loop 1) and one whose NETSCAPE count is n plays n + 1
times, as browsers do. Durations are milliseconds; GIF stores them in 10 ms units (rounded).

Writing keeps the frame count, durations and loop, with one exception owed to every encoder
(Pillow's GIF and APNG writers, libwebp): two successive identical frames are stored as one frame
with the summed duration, so the animation plays the same with fewer frames. GIF frames get
their own 256-colour palette (exact when a frame has fewer colours) and on/off transparency.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
from PIL import Image as PILImage

from jdsr_cli.errors import ImageReadError, ImageWriteError
from jdsr_cli.io import integrity
from jdsr_cli.io.encoders import DEFAULT_QUALITY, gif_palette_image, to_pil
from jdsr_cli.io.imagedata import Image
from jdsr_cli.io.limits import check_pixel_limit, open_pil, resolve_limit
from jdsr_cli.io.metadata import exif_for_output, icc_matches
from jdsr_cli.io.reader import decode_image, finish_warnings, load_frame, read_bytes
from jdsr_cli.io.writer import check_write_options, prepare_samples, resolve_output_format, write_atomically

__all__ = ["Animation", "ANIMATION_FORMATS", "frame_count", "read_frames", "decode_frames", "write_animation"]

#: Canonical formats :func:`write_animation` can write (PNG means APNG).
ANIMATION_FORMATS: tuple[str, ...] = ("gif", "png", "webp")
_ANIMATED_SOURCES = {"GIF": "gif", "PNG": "png", "WEBP": "webp"}


@dataclass
class Animation:
    """Full-size frames (same size and channels) with their durations, the loop and the source format.

    ``source_format`` is Pillow's name of the file format read ("GIF", "PNG" for APNG, "WEBP");
    ``warnings`` gathers the decoder's complaints about the file, as ``Image.warnings`` does.
    The ICC profile and EXIF of the animation are those of ``frames[0]``.
    """

    frames: list[Image]
    durations_ms: list[int]
    loop: int = 0
    source_format: str = "GIF"
    warnings: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.frames:
            raise ValueError("an animation needs at least one frame")
        if len(self.durations_ms) != len(self.frames):
            raise ValueError(f"{len(self.frames)} frames but {len(self.durations_ms)} durations")
        if any(d < 0 for d in self.durations_ms) or self.loop < 0:
            raise ValueError("durations and loop must not be negative")
        shape = self.frames[0].pixels.shape
        if any(frame.pixels.shape != shape for frame in self.frames):
            raise ValueError("every frame must have the size and channels of the first")
        self.durations_ms = [int(d) for d in self.durations_ms]
        self.warnings = tuple(self.warnings)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of every frame."""
        return self.frames[0].size

    @property
    def total_duration_ms(self) -> int:
        return sum(self.durations_ms)


def frame_count(source: str | os.PathLike[str] | bytes, *, name: str | None = None) -> int:
    """Frames of an animated GIF, APNG or WebP (1 for any other image); cheap: nothing is decoded.

    ``name`` is what errors call the source (default: its path, or ``<bytes>``).
    """
    data = source if isinstance(source, bytes) else read_bytes(source)
    if name is None:
        name = "<bytes>" if isinstance(source, bytes) else os.fspath(source)
    if not data:
        raise ImageReadError(f"{name}: empty file (0 bytes)")
    with integrity.capture_pillow_warnings():
        pil = open_pil(data, name)
        if pil is None:
            return 1
        with pil:
            return _frames_of(pil, name)


def _frames_of(pil: PILImage.Image, name: str) -> int:
    if pil.format not in _ANIMATED_SOURCES:
        return 1
    try:
        return max(1, int(getattr(pil, "n_frames", 1)))
    except Exception as exc:  # noqa: BLE001 - counting GIF frames walks the file
        raise ImageReadError(f"{name}: truncated or corrupt animation ({exc})") from exc


def read_frames(
    path: str | os.PathLike[str], *, max_pixels: int | None = None, strict: bool = False
) -> Image | Animation:
    """Every frame of an animated GIF/APNG/WebP as an :class:`Animation`; any other file as an Image.

    ``max_pixels`` limits the pixels of all frames together (None: Pillow's limit, 0: none);
    ``strict`` turns the first decoder warning into an :class:`ImageReadError`.
    """
    return decode_frames(read_bytes(path), name=os.fspath(path), max_pixels=max_pixels, strict=strict)


def decode_frames(
    data: bytes, *, name: str = "<bytes>", max_pixels: int | None = None, strict: bool = False
) -> Image | Animation:
    """:func:`read_frames` for bytes held in memory."""
    if not data or frame_count(data, name=name) == 1:
        return decode_image(data, name=name, max_pixels=max_pixels, strict=strict)
    limit = resolve_limit(max_pixels)
    with integrity.capture_pillow_warnings() as pillow_warnings:
        pil = open_pil(data, name)
        with pil:
            frames, durations, loop = _decode_all(pil, data, name, limit)
            source = pil.format
    found = [w for frame in frames for w in frame.warnings] + pillow_warnings
    found += integrity.file_warnings(data, source, "RGB")
    return Animation(frames, durations, loop, source, finish_warnings(name, found, strict))


def _decode_all(
    pil: PILImage.Image, data: bytes, name: str, limit: int | None
) -> tuple[list[Image], list[int], int]:
    """Decode every frame (pixel limit over all of them first); frames, durations, plays."""
    count = _frames_of(pil, name)
    check_pixel_limit(name, *pil.size, limit, frames=count)
    frames, durations, loop_value = [], [], None
    for index in range(count):
        try:
            pil.seek(index)
        except Exception as exc:  # noqa: BLE001
            raise ImageReadError(f"{name}: frame {index + 1} of {count} cannot be read ({exc})") from exc
        decoded = load_frame(pil, data, f"{name} (frame {index + 1})", deep=False)
        frames.append(Image(decoded.pixels, 8, decoded.icc, decoded.exif, pil.format, decoded.warnings))
        durations.append(int(round(float(pil.info.get("duration") or 0))))
        loop_value = pil.info.get("loop", loop_value)
    return _same_channels(frames), durations, _plays(pil.format, loop_value)


def _plays(fmt: str | None, stored: object) -> int:
    """The stored loop field as a number of plays (0: forever); see the module documentation."""
    if not isinstance(stored, int):
        return 1 if fmt == "GIF" else 0
    return stored + 1 if fmt == "GIF" and stored > 0 else stored


def _same_channels(frames: list[Image]) -> list[Image]:
    """Give every frame the same channels: the first's if all agree, else RGB(A)."""
    counts = {frame.channels for frame in frames}
    if len(counts) == 1:
        return frames
    alpha = any(frame.has_alpha for frame in frames)
    return [_as_rgb(frame, alpha) for frame in frames]


def _as_rgb(frame: Image, alpha: bool) -> Image:
    color = frame.color if frame.channels >= 3 else np.repeat(frame.color, 3, axis=2)
    if alpha:
        a = frame.alpha if frame.has_alpha else np.ones(frame.pixels.shape[:2], np.float32)
        color = np.dstack([color, a])
    return Image(np.ascontiguousarray(color), 8, frame.icc_profile, frame.exif, frame.source_format, frame.warnings)


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def _gif_loop(plays: int) -> dict[str, int]:
    """Pillow's GIF ``loop`` parameter for a number of plays (no parameter: play once)."""
    return {} if plays == 1 else {"loop": 0 if plays == 0 else plays - 1}


def _pil_frames(name: str, frames: Sequence[Image], fmt: str) -> list[PILImage.Image]:
    samples = (prepare_samples(name, frame.pixels, fmt, 8) for frame in frames)
    return [gif_palette_image(q) if fmt == "gif" else to_pil(q) for q in samples]


def _save_params(fmt: str, anim: Animation, quality: int | None, lossless: bool, metadata: dict) -> dict:
    durations = list(anim.durations_ms)
    if fmt == "gif":
        transparent = any(frame.has_alpha for frame in anim.frames)
        centiseconds = [(d + 5) // 10 * 10 for d in durations]  # rounded half up (Pillow would truncate)
        return {"format": "GIF", "duration": centiseconds, "disposal": 2 if transparent else 1,
                **_gif_loop(anim.loop)}
    if fmt == "png":
        return {"format": "PNG", "duration": durations, "loop": anim.loop, "disposal": 0, "blend": 0, **metadata}
    params: dict[str, object] = {"format": "WEBP", "duration": durations, "loop": anim.loop, **metadata}
    if lossless:
        params.update(lossless=True, exact=True, **({"quality": quality} if quality is not None else {}))
    else:
        params["quality"] = DEFAULT_QUALITY["webp"] if quality is None else quality
    return params


def _metadata(name: str, anim: Animation, fmt: str, strip: bool) -> dict[str, bytes]:
    """The first frame's ICC profile and EXIF as Pillow save parameters (GIF holds neither)."""
    first = anim.frames[0]
    if strip or fmt == "gif":
        return {}
    out = {}
    if first.icc_profile and icc_matches(first.icc_profile, 3 if fmt == "webp" else first.channels):
        out["icc_profile"] = first.icc_profile
    exif = exif_for_output(first.exif, name) if first.exif else None
    if exif:
        out["exif"] = exif
    return out


def write_animation(
    path: str | os.PathLike[str],
    anim: Animation,
    *,
    format: str | None = None,  # noqa: A002 - the public keyword is "format", as in write_image
    quality: int | None = None,
    lossless: bool = False,
    strip_metadata: bool = False,
) -> None:
    """Encode ``anim`` as an animated GIF, APNG (format png) or WebP and write it atomically.

    ``format`` defaults to the extension. ``quality`` and ``lossless`` apply to WebP as in
    :func:`jdsr_cli.io.writer.write_image`; GIF and APNG are lossless apart from GIF's palette.
    The ICC profile and EXIF of the first frame are kept (not in GIF) unless ``strip_metadata``.
    Failures raise :class:`ImageWriteError`; an existing file is only replaced by a complete one.
    """
    name = os.fspath(path)
    fmt = resolve_output_format(path, format)
    if fmt not in ANIMATION_FORMATS:
        raise ImageWriteError(f"{name}: cannot write an animation as {fmt.upper()}; use GIF, PNG (APNG) or WebP")
    check_write_options(name, fmt, quality, lossless)
    width, height = anim.size
    if width == 0 or height == 0:
        raise ImageWriteError(f"{name}: cannot write an empty animation ({width}x{height})")
    frames = _pil_frames(name, anim.frames, fmt)
    params = _save_params(fmt, anim, quality, lossless, _metadata(name, anim, fmt, strip_metadata))

    def encode(handle: BinaryIO) -> None:
        frames[0].save(handle, save_all=True, append_images=frames[1:], **params)

    write_atomically(path, fmt, encode)
