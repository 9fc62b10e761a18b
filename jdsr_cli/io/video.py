"""Reading videos with PyAV (FFmpeg in the wheel): what a clip holds, then its frames as RGB samples.

A clip is probed before any work: its video stream, its decoder, and a scan of every video packet (demuxing
only, no decoding), which gives the exact frame count for the progress bar and finds a truncated file before
the model runs. Frames come out in presentation order with their own timestamps (variable frame rates stay
as they are), as 8-bit RGB, or as 16-bit RGB when the source has more than 8 bits a sample (10-bit HEVC,
ProRes...). YUV is converted with the clip's own matrix and range, and converted back with the same ones.

Damage: a file with no video stream, a codec this FFmpeg cannot decode, data that does not parse or stops
short of the duration its header states raise :class:`VideoReadError` (one line, path first). A packet that
cannot be decoded mid-stream loses its frame: the others keep their times, and the reader's ``warnings``
say so (``strict`` makes it an error), as a damaged image is reported.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from jdsr_cli.errors import ImageReadError, one_line

__all__ = ["VIDEO_EXTENSIONS", "ColorTags", "DecodedFrame", "VideoInfo", "VideoReadError", "VideoReader",
           "is_video_path", "probe_video"]

#: Extensions taken as videos (lower case, with the dot); the output keeps the input's container.
VIDEO_EXTENSIONS: frozenset[str] = frozenset({".mp4", ".m4v", ".mkv", ".mov", ".webm", ".avi"})
#: A clip whose last frame ends this much before the duration its header states is truncated.
_TRUNCATION_SLACK_S = 0.5


class VideoReadError(ImageReadError):
    """An input video could not be opened, decoded, or is incomplete (one line naming the file)."""


def is_video_path(path: object) -> bool:
    """Whether a file name ends in a video extension we read and write."""
    return Path(str(path)).suffix.lower() in VIDEO_EXTENSIONS


@dataclass(frozen=True)
class ColorTags:
    """The colour description FFmpeg keeps per stream (its enum values): primaries, transfer, matrix, range."""

    primaries: int = 2  # 2 = unspecified throughout
    transfer: int = 2
    matrix: int = 2
    range: int = 0  # 0 unspecified, 1 limited (MPEG), 2 full (JPEG)


@dataclass(frozen=True)
class VideoInfo:
    """What the encoder and the job need to know about a clip, before any frame is decoded for good."""

    name: str
    width: int
    height: int
    codec: str
    pix_fmt: str
    depth: int  # 8, or 16 when the source has more than 8 bits a sample
    time_base: Fraction
    rate: Fraction | None  # average frame rate (None: unknown)
    frames: int  # video packets found by the scan (one frame each)
    duration_s: float | None
    display_matrix: tuple[int, ...] | None
    color: ColorTags

    @property
    def rotation(self) -> int:
        """Display rotation in degrees (counter-clockwise), 0 when none."""
        if self.display_matrix is None:
            return 0
        a, b = self.display_matrix[0], self.display_matrix[1]
        return int(round(-np.degrees(np.arctan2(b, a)))) % 360  # as FFmpeg (and PyAV) read it


@dataclass(frozen=True)
class DecodedFrame:
    """One frame: its index in presentation order, its timestamp (in the stream's time base) and its samples."""

    index: int
    pts: int
    pixels: np.ndarray  # H×W×3 uint8 or uint16


def probe_video(path: str | os.PathLike[str]) -> VideoInfo:
    """Open ``path``, check its video stream can be decoded, and scan its packets (no decoding but the first frame)."""
    name = os.fspath(path)
    with _open(name) as container:
        count, end_s = _scan(container, _video_stream(container, name), name)
    if count == 0:
        raise VideoReadError(f"{name}: the video stream has no frames")
    with _open(name) as container:
        stream = _video_stream(container, name)
        info = _info(name, container, stream, _first_frame(container, stream, name), count)
    _check_complete(info, end_s)
    return info


def _open(name: str) -> Any:
    import av

    try:
        if os.path.getsize(name) == 0:
            raise VideoReadError(f"{name}: empty file (0 bytes)")
        return av.open(name, metadata_errors="replace")
    except FileNotFoundError:
        raise VideoReadError(f"{name}: no such file") from None
    except PermissionError:
        raise VideoReadError(f"{name}: permission denied") from None
    except av.error.FFmpegError as error:
        raise VideoReadError(f"{name}: not a readable video (truncated, damaged or not a video file: "
                             f"{_reason(error)})") from None


def _reason(error: BaseException) -> str:
    text = one_line(error)
    return text.split("] ", 1)[-1].split(": '", 1)[0] if "] " in text else text


def _video_stream(container: Any, name: str) -> Any:
    streams = [s for s in container.streams.video if not s.disposition & 0x400]  # 0x400: attached picture (cover)
    if not streams:
        kinds = ", ".join(sorted({s.type for s in container.streams})) or "nothing"
        raise VideoReadError(f"{name}: has no video stream (it holds {kinds})")
    stream = streams[0]
    if stream.codec_context is None:  # FFmpeg does not know the codec, or this build has no decoder for it
        raise VideoReadError(f"{name}: its video codec is not one this FFmpeg build can decode")
    stream.thread_type = "AUTO"
    return stream


def _first_frame(container: Any, stream: Any, name: str) -> Any:
    import av

    try:
        for frame in container.decode(stream):
            return frame
    except av.error.FFmpegError as error:
        raise VideoReadError(f"{name}: the first frame cannot be decoded ({stream.codec_context.name}: "
                             f"{_reason(error)})") from None
    raise VideoReadError(f"{name}: no frame of the {stream.codec_context.name} video could be decoded")


def _scan(container: Any, stream: Any, name: str) -> tuple[int, float | None]:
    """Video packets in the file and when the last one ends (seconds), reading the file once without decoding."""
    import av

    count, end = 0, None
    try:
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            count += 1
            if packet.pts is not None:
                stop = float((packet.pts + (packet.duration or 0)) * packet.time_base)
                end = stop if end is None else max(end, stop)
    except av.error.FFmpegError as error:
        raise VideoReadError(f"{name}: damaged after {count} frames ({_reason(error)})") from None
    return count, end


def _info(name: str, container: Any, stream: Any, first: Any, count: int) -> VideoInfo:
    ctx = stream.codec_context
    fmt = first.format
    depth = 16 if max(c.bits for c in fmt.components) > 8 else 8
    matrix = None
    for side in first.side_data:
        if side.type.name == "DISPLAYMATRIX":
            matrix = tuple(int(v) for v in np.frombuffer(memoryview(side), dtype="<i4"))
    color = ColorTags(int(ctx.color_primaries or 2), int(ctx.color_trc or 2), int(first.colorspace or 2),
                      int(first.color_range or 0))
    return VideoInfo(name, first.width, first.height, ctx.name, fmt.name, depth, stream.time_base,
                     stream.average_rate, count, _stated_duration(container, stream), matrix, color)


def _stated_duration(container: Any, stream: Any) -> float | None:
    """The video stream's duration as the header states it (seconds), when it says it for the video alone."""
    if stream.duration:
        return float(stream.duration * stream.time_base)
    tag = (stream.metadata or {}).get("DURATION")  # Matroska writes one per stream
    if tag:
        try:
            hours, minutes, seconds = tag.split(":")
            return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
        except ValueError:
            return None
    if len(container.streams) == 1 and container.duration:
        return container.duration / 1_000_000
    return None


def _check_complete(info: VideoInfo, end_s: float | None) -> None:
    stated = info.duration_s
    if stated is None or end_s is None:
        return
    slack = max(_TRUNCATION_SLACK_S, 2 / float(info.rate)) if info.rate else _TRUNCATION_SLACK_S
    if end_s < stated - slack:
        raise VideoReadError(f"{info.name}: truncated: the frames stop at {end_s:.2f} s of the {stated:.2f} s "
                             "its header states")


@dataclass
class VideoReader:
    """Decodes a probed clip frame by frame; ``warnings`` gathers what was damaged but decoded anyway."""

    info: VideoInfo
    strict: bool = False
    warnings: list[str] = field(default_factory=list)
    decoded: int = 0  # frames decoded, once :meth:`frames` has run to the end

    def frames(self, start: int = 0) -> Iterator[DecodedFrame]:
        """Every frame from index ``start`` on (earlier ones are decoded but not converted: exact resumes).

        Timestamps are the stream's; a missing one follows its predecessor by one frame, and one that does not
        increase is moved just after its predecessor (an encoder needs increasing times), with a warning.
        """
        container = _open(self.info.name)
        with container:
            stream = _video_stream(container, self.info.name)
            index, previous = 0, None
            for frame in self._decoded(container, stream):
                pts = self._timestamp(frame, previous, index)
                previous = pts
                if index >= start:
                    yield DecodedFrame(index, pts, self._samples(frame))
                index += 1
            self.decoded = index

    def _decoded(self, container: Any, stream: Any) -> Iterator[Any]:
        import av

        failed: list[float] = []
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.error.FFmpegError as error:
                when = float(packet.pts * packet.time_base) if packet.pts is not None else float("nan")
                self._damaged(f"the frame at {when:.2f} s cannot be decoded ({_reason(error)})")
                failed.append(when)
                continue
            for frame in frames:
                if frame.is_corrupt:
                    self._damaged(f"the frame at {float(frame.time or 0):.2f} s is damaged (decoded as far as it could be)")
                yield frame
        if len(failed) > 1:
            self.warnings.append(f"{len(failed)} frames could not be decoded and are left out (damaged data)")

    def _damaged(self, what: str) -> None:
        if self.strict:
            raise VideoReadError(f"{self.info.name}: {what}")
        if len(self.warnings) < 3:
            self.warnings.append(f"{what}; the other frames keep their times")

    def _timestamp(self, frame: Any, previous: int | None, index: int) -> int:
        pts = frame.pts
        if pts is None:
            step = _frame_step(self.info)
            return 0 if previous is None else previous + step
        if previous is not None and pts <= previous:
            if not any("timestamps" in w for w in self.warnings):
                self.warnings.append(f"frame {index}: timestamps that do not increase were moved to follow the "
                                     "frame before")
            return previous + 1
        return int(pts)

    def _samples(self, frame: Any) -> np.ndarray:
        fmt = "rgb48le" if self.info.depth == 16 else "rgb24"
        color = self.info.color
        rgb = frame.reformat(format=fmt, src_colorspace=color.matrix if color.matrix != 2 else None,
                             src_color_range=color.range or None)
        return rgb.to_ndarray()


def _frame_step(info: VideoInfo) -> int:
    """One frame's duration in the stream's time base (1 when the rate is unknown)."""
    if not info.rate:
        return 1
    return max(1, round(1 / (info.rate * info.time_base)))
