"""Writing videos with PyAV: the encoder and its defaults, segments of encoded frames, and the final file.

A long clip is encoded in segments, each by a fresh encoder that starts with a key frame and keeps every
frame's own timestamp (stored as :mod:`jdsr_cli.io.video_segments` says). The final file is then muxed from the
segments' packets, in order, with the source's audio and subtitle streams copied packet for packet (no
re-encoding), its rotation and colour description, and written atomically (:mod:`jdsr_cli.io.atomic`).

Segments of identical settings concatenate into one stream because the encoder's global header (SPS/PPS for
H.264) depends only on those settings; the final stream's encoder is opened with them too, and checked.
"""

from __future__ import annotations

import functools
import io
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from jdsr_cli.errors import ImageWriteError, UsageError
from jdsr_cli.io.video import ColorTags, VideoInfo
from jdsr_cli.io.video_segments import Packet, read_segment

__all__ = ["ENCODER_CANDIDATES", "EncoderSettings", "SegmentEncoder", "available_encoders", "container_format",
           "encoder_settings", "sample_depth", "write_video"]

#: Encoders offered, best first per family; ``jdsr doctor`` lists those this PyAV can open.
ENCODER_CANDIDATES = ("libx264", "libopenh264", "libx265", "libvpx-vp9", "libvpx", "libsvtav1", "libaom-av1",
                      "mpeg4", "ffv1", "prores_ks", "h264_nvenc", "hevc_nvenc", "av1_nvenc")
_CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm", ".avi": "avi"}
_DEFAULTS = {"webm": ("libvpx-vp9", "libvpx"), "other": ("libx264", "libopenh264", "libx265", "mpeg4")}
#: Default quality per encoder: CRF for x264 18 (visually lossless for most content; x264's own default is 23),
#: x265 20, VP9 24, SVT-AV1 28; mpeg4 takes a quantiser (2 best .. 31), 3 by default.
_DEFAULT_CRF = {"libx264": 18, "libx265": 20, "libvpx-vp9": 24, "libvpx": 10, "libsvtav1": 28, "libaom-av1": 28,
                "mpeg4": 3}
_GLOBAL_HEADER_FLAG = 0x0040  # AVFMT_GLOBALHEADER: the container keeps codec headers out of band


def container_format(path: Path) -> str:
    """FFmpeg's muxer name for an output file name (``.mkv`` -> ``matroska``)."""
    try:
        return _CONTAINERS[path.suffix.lower()]
    except KeyError:
        raise UsageError(f"{path}: not a video file name (use {', '.join(sorted(_CONTAINERS))})") from None


def available_encoders() -> list[str]:
    """The video encoders of :data:`ENCODER_CANDIDATES` that actually open here (hardware ones need their device)."""
    return [name for name in ENCODER_CANDIDATES if _opens(name)]


@functools.cache
def _opens(name: str) -> bool:
    import av

    try:
        ctx = av.CodecContext.create(name, "w")
        ctx.width, ctx.height, ctx.pix_fmt = 64, 64, _pix_fmt(name, "yuv420p", 8)
        ctx.time_base = Fraction(1, 25)
        ctx.options = _quiet(name)
        ctx.open()
    except Exception:  # noqa: BLE001 - unknown name, missing library or hardware: not available
        return False
    return True


def _quiet(codec: str) -> dict[str, str]:
    """Options that keep an encoder's banner off the terminal (SVT-AV1 reads its log level from the environment)."""
    if codec == "libsvtav1":
        os.environ.setdefault("SVT_LOG", "1")
    return {"x265-params": "log-level=error"} if codec == "libx265" else {}


@dataclass(frozen=True)
class EncoderSettings:
    """Everything that decides the encoded bytes of a segment (part of a resumable job's identity)."""

    codec: str
    width: int
    height: int
    pix_fmt: str
    time_base: Fraction
    rate: Fraction | None
    options: tuple[tuple[str, str], ...]
    color: ColorTags
    global_header: bool

    def key(self) -> dict[str, Any]:
        """A JSON-ready description (with the PyAV version: another build may encode other bytes)."""
        import av

        return {"codec": self.codec, "size": [self.width, self.height], "pix_fmt": self.pix_fmt,
                "time_base": str(self.time_base), "rate": str(self.rate), "options": dict(self.options),
                "color": [self.color.primaries, self.color.transfer, self.color.matrix, self.color.range],
                "global_header": self.global_header, "av": av.__version__}


def default_codec(fmt: str) -> str:
    """The best encoder this PyAV has for a container: H.264 (x264) but VP9 for WebM; mpeg4 at worst."""
    import av

    names = av.codecs_available
    for name in _DEFAULTS["webm" if fmt == "webm" else "other"]:
        if name in names and _opens(name):
            return name
    return "mpeg4"


def encoder_settings(info: VideoInfo, width: int, height: int, output: Path, codec: str | None,
                     crf: int | None) -> EncoderSettings:
    """Settings for ``info``'s frames upscaled to ``width``×``height`` in ``output``'s container (a UsageError if
    the codec is unknown, cannot be opened here, or cannot go into that container)."""
    fmt = container_format(output)
    name = codec or default_codec(fmt)
    if not _opens(name):
        raise UsageError(f"--video-codec {name}: not an encoder this PyAV build can open "
                         f"(available: {', '.join(available_encoders())})")
    if not _fits(fmt, name):
        raise UsageError(f"--video-codec {name}: {output.suffix} files cannot hold it; pick another codec or -o name")
    options = _quality_options(name, crf)
    if fmt == "avi":  # AVI stores no presentation times: frames must come in display order (no B-frames)
        options["bf"] = "0"
    global_header = bool(_format_flags(fmt) & _GLOBAL_HEADER_FLAG)
    return EncoderSettings(name, width, height, _pix_fmt(name, info.pix_fmt, info.depth), info.time_base, info.rate,
                           tuple(sorted(options.items())), info.color, global_header)


def sample_depth(pix_fmt: str) -> int:
    """Bits a sample of a pixel format holds at most (8 for yuv420p, 10 for yuv420p10le)."""
    import av

    return max(c.bits for c in av.VideoFormat(pix_fmt).components)


def _format_flags(fmt: str) -> int:
    import av

    return int(av.format.ContainerFormat(fmt, "w").flags)


def _fits(fmt: str, codec: str) -> bool:
    import av

    probe = av.open(io.BytesIO(), "w", format=fmt)
    try:
        return codec in probe.supported_codecs or av.Codec(codec, "w").name in probe.supported_codecs
    finally:
        probe.close()


def _quality_options(codec: str, crf: int | None) -> dict[str, str]:
    """The encoder options for a quality: CRF where the encoder has one, mpeg4's quantiser otherwise."""
    value = crf if crf is not None else _DEFAULT_CRF.get(codec)
    options = _quiet(codec)
    if codec in ("libx264", "libx265"):
        options["preset"] = "medium"
    if codec == "libsvtav1":
        options["preset"] = "8"
    if value is None:
        return options
    if codec == "mpeg4":
        if not 2 <= value <= 31:
            raise UsageError(f"--crf {value}: mpeg4 takes a quantiser from 2 (best) to 31")
        return {**options, "flags": "+qscale", "global_quality": str(value * 118)}  # 118: FF_QP2LAMBDA
    if not _has_option(codec, "crf"):
        raise UsageError(f"--crf: {codec} has no CRF setting; drop --crf")
    if not 0 <= value <= 63:
        raise UsageError(f"--crf {value}: use 0 (best) to 51 (x264/x265) or 63 (VP9, AV1)")
    options["crf"] = str(value)
    if codec.startswith("libvpx"):
        # constant quality (no bitrate cap); rows encoded in parallel; speed 4 of libvpx's 0..8 instead of its 1
        options.update(b="0", **{"row-mt": "1", "cpu-used": "4"})
    return options


def _has_option(codec: str, option: str) -> bool:
    import av

    return any(o.name == option for o in av.CodecContext.create(codec, "w").supported_options.private)


def _pix_fmt(codec: str, source: str, depth: int) -> str:
    """The source's pixel format when the encoder takes it, else 4:2:0 at the source's depth, else 8-bit 4:2:0."""
    import av

    formats = [f.name for f in (av.Codec(codec, "w").video_formats or [])]
    if not formats:
        return source
    for wanted in (source, "yuv420p10le" if depth > 8 else "yuv420p", "yuv420p"):
        if wanted in formats:
            return wanted
    return formats[0]


def _configure(ctx: Any, settings: EncoderSettings) -> None:
    import av

    ctx.width, ctx.height, ctx.pix_fmt = settings.width, settings.height, settings.pix_fmt
    ctx.time_base = settings.time_base
    if settings.rate:
        ctx.framerate = settings.rate
    color = settings.color
    ctx.color_primaries, ctx.color_trc, ctx.colorspace = color.primaries, color.transfer, color.matrix
    ctx.color_range = color.range
    if settings.global_header:
        ctx.flags |= av.codec.context.Flags.global_header
    ctx.options = dict(settings.options)


class SegmentEncoder:
    """A fresh encoder for one segment: RGB frames in, packets (and the encoder's global header) out."""

    def __init__(self, settings: EncoderSettings) -> None:
        import av

        self.settings = settings
        self._ctx = av.CodecContext.create(settings.codec, "w")
        _configure(self._ctx, settings)
        self._ctx.open()
        self.packets: list[Packet] = []

    @property
    def extradata(self) -> bytes:
        return bytes(self._ctx.extradata or b"")

    def encode(self, pts: int, rgb: np.ndarray) -> None:
        """Encode one H×W×3 uint8/uint16 frame shown at ``pts``."""
        import av

        s = self.settings
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb48le" if rgb.dtype == np.uint16
                                           else "rgb24")
        frame = frame.reformat(format=s.pix_fmt, dst_colorspace=s.color.matrix if s.color.matrix != 2 else None,
                               dst_color_range=s.color.range or None)
        frame.pts, frame.time_base = pts, s.time_base
        self._collect(self._ctx.encode(frame))

    def finish(self) -> list[Packet]:
        """Flush the encoder; every packet of the segment."""
        self._collect(self._ctx.encode(None))
        return self.packets

    def _collect(self, packets: Iterable[Any]) -> None:
        for p in packets:
            if p.size:
                self.packets.append(Packet(p.pts, p.dts, int(p.duration or 0), bool(p.is_keyframe), bytes(p)))


def write_video(handle: Any, output: Path, source: VideoInfo, settings: EncoderSettings,
                segments: list[Path]) -> tuple[list[str], list[str]]:
    """Mux ``segments`` and ``source``'s audio and subtitle streams into ``handle`` (a seekable binary file, the
    temp file of an atomic write of ``output``); returns the streams copied ("audio aac") and warnings (a stream
    the container cannot hold is left out, named)."""
    import av

    warnings: list[str] = []
    with av.open(source.name, metadata_errors="replace") as src, \
            av.open(handle, "w", format=container_format(output)) as out:
        video = _output_stream(out, source, settings)
        copied = _copied_streams(src, out, output, warnings)
        out.metadata.update({k: v for k, v in src.metadata.items() if k.lower() not in _CONTAINER_KEYS})
        out.start_encoding()
        _check_header(video, segments)
        packets = _merged(_video_packets(segments, video, settings.time_base), _source_packets(src, copied))
        for packet in packets:
            out.mux(packet)
        names = [f"{src.streams[i].type} {src.streams[i].codec_context.name}" for i in copied]
    return names, warnings


_CONTAINER_KEYS = {"major_brand", "minor_version", "compatible_brands", "encoder", "creation_time"}


def _output_stream(out: Any, source: VideoInfo, settings: EncoderSettings) -> Any:
    stream = out.add_stream(settings.codec, rate=settings.rate)
    stream.time_base = settings.time_base
    _configure(stream.codec_context, settings)
    if source.display_matrix is not None:
        stream.set_display_matrix(list(source.display_matrix))
    return stream


def _copied_streams(src: Any, out: Any, output: Path, warnings: list[str]) -> dict[int, Any]:
    """Output streams for the source's audio and subtitles, by source index; those ``output`` cannot hold are named."""
    supported = out.supported_codecs
    copied = {}
    for stream in src.streams:
        if stream.type not in ("audio", "subtitle") or stream.codec_context is None:
            continue
        codec = stream.codec_context.name
        if codec not in supported:
            warnings.append(f"{stream.type} stream {stream.index} ({codec}) left out: {output.suffix} files cannot "
                            "hold it without re-encoding")
            continue
        new = out.add_stream_from_template(stream)
        new.metadata.update(stream.metadata)
        new.disposition = stream.disposition
        copied[stream.index] = new
    return copied


def _check_header(video: Any, segments: list[Path]) -> None:
    """The final stream's global header must be the one every segment was encoded with."""
    header = bytes(video.codec_context.extradata or b"")
    for path in segments[:1]:
        stored, _ = read_segment(path)
        if stored != header:
            raise ImageWriteError(f"{path.parent}: the encoder's header differs from the segments' (another PyAV "
                                  "build?); delete this folder to encode again")


def _video_packets(segments: list[Path], stream: Any, time_base: Fraction) -> Iterator[Any]:
    """Every segment's packets in order, as PyAV packets of ``stream``; decode timestamps made increasing."""
    import av

    last_dts: int | None = None
    for path in segments:
        _, packets = read_segment(path)
        for p in packets:
            packet = av.Packet(p.data)
            dts = p.dts
            if dts is not None and last_dts is not None and dts <= last_dts:
                if p.pts is not None and last_dts + 1 > p.pts:
                    raise ImageWriteError(f"{path}: decode times overlap the previous segment's")
                dts = last_dts + 1
            last_dts = dts if dts is not None else last_dts
            packet.pts, packet.dts, packet.duration = p.pts, dts, p.duration
            packet.is_keyframe = p.key
            packet.time_base = time_base
            packet.stream = stream
            yield packet


def _source_packets(src: Any, copied: dict[int, Any]) -> Iterator[Any]:
    if not copied:
        return
    for packet in src.demux([src.streams[i] for i in copied]):
        if packet.size == 0 or (packet.dts is None and packet.pts is None):
            continue
        packet.stream = copied[packet.stream.index]
        yield packet


def _merged(first: Iterator[Any], second: Iterator[Any]) -> Iterator[Any]:
    """Two packet streams interleaved by decode time, so the muxer never buffers one stream whole."""
    a, b = next(first, None), next(second, None)
    while a is not None or b is not None:
        if b is None or (a is not None and _time(a) <= _time(b)):
            yield a
            a = next(first, None)
        else:
            yield b
            b = next(second, None)


def _time(packet: Any) -> float:
    ts = packet.dts if packet.dts is not None else packet.pts
    return float(ts * packet.time_base) if ts is not None else float("-inf")

