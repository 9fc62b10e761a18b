"""Small clips the video tests make themselves (PyAV), and what to compare between two clips."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np


def make_clip(path: Path, *, frames: int = 50, size: tuple[int, int] = (64, 48), vfr: bool = False,
              audio: bool = True, pix_fmt: str = "yuv420p", rotation: int | None = None, codec: str = "libx264",
              seed: int = 0) -> Path:
    """A clip of moving colour waves: 25 fps (or variable: 40 and 80 ms frames), AAC mono 440 Hz audio as long
    as the video, BT.709 limited-range tags, and a display rotation if asked."""
    import av

    width, height = size
    with av.open(str(path), "w") as out:
        video = out.add_stream(codec, rate=25)
        video.width, video.height, video.pix_fmt = width, height, pix_fmt
        video.codec_context.time_base = Fraction(1, 1000) if vfr else Fraction(1, 25)
        ctx = video.codec_context
        ctx.color_primaries, ctx.color_trc, ctx.colorspace, ctx.color_range = 1, 1, 1, 1
        if rotation is not None:
            video.set_display_rotation(rotation)
        sound = out.add_stream("aac", rate=48000) if audio else None
        pts = 0
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(_picture(width, height, i + seed), format="rgb24")
            frame.pts = pts
            pts += (80 if i % 3 == 0 else 40) if vfr else 1
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if sound is not None:
            seconds = pts / 1000 if vfr else frames / 25
            tone(out, sound, seconds)
    return path


def _picture(width: int, height: int, t: int) -> np.ndarray:
    """Smooth colour waves and a bright square moving one step a frame (a video codec's kind of content)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    red = 0.5 + 0.4 * np.sin((x + 2 * t) / 9)
    green = 0.5 + 0.4 * np.cos((y - t) / 7)
    blue = 0.5 + 0.3 * np.sin((x + y) / 13 + t / 5)
    rgb = np.stack([red, green, blue], axis=2)
    left, top = (2 * t) % max(1, width - 12), (t // 2) % max(1, height - 12)
    rgb[top : top + 12, left : left + 12] = (0.95, 0.9, 0.2)
    return (rgb * 255 + 0.5).astype(np.uint8)


def bilinear_fsrcnn(folder: Path) -> Path:
    """A ×2 FSRCNN-s checkpoint that enlarges bilinearly (identity layers, a bilinear deconvolution): a real,
    deterministic network that runs in milliseconds and whose output looks like its input."""
    import torch

    from jdsr_cli.archs import REGISTRY
    from jdsr_cli.archs.registry import ArchConfig
    from jdsr_cli.checkpoints.save import save_checkpoint

    config = ArchConfig("fsrcnn", 2, dict(REGISTRY.get("fsrcnn").presets["fsrcnn-s"]))
    net = REGISTRY.build(config)
    taps = torch.tensor([0.0, 0.0, 0.0, 0.25, 0.75, 0.75, 0.25, 0.0, 0.0])
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.PReLU):
                module.weight.fill_(1.0)  # identity activations: the network is linear
            elif isinstance(module, torch.nn.Conv2d):
                module.weight.zero_()
                module.bias.zero_()
                k = module.kernel_size[0] // 2
                for c in range(3):
                    module.weight[c, c, k, k] = 1.0
        deconv = net.last_part
        deconv.weight.zero_()
        deconv.bias.zero_()
        for c in range(3):
            deconv.weight[c, c] = torch.outer(taps, taps)
    return save_checkpoint(folder, net, config)


def with_subtitles(source: Path, path: Path, lines: list[str]) -> Path:
    """``source`` remuxed into Matroska with a SubRip track: one line every 0.5 s, shown for 0.4 s."""
    import av

    with av.open(str(source)) as src, av.open(str(path), "w") as out:
        copies = {s.index: out.add_stream_from_template(s) for s in src.streams}
        text = out.add_mux_stream("subrip")
        text.time_base = Fraction(1, 1000)
        for packet in src.demux():
            if packet.size:
                packet.stream = copies[packet.stream.index]
                out.mux(packet)
        for i, line in enumerate(lines):
            packet = av.Packet(line.encode())
            packet.pts, packet.duration, packet.time_base, packet.stream = 500 * i, 400, Fraction(1, 1000), text
            out.mux(packet)
    return path


def tone(out, stream, seconds: float) -> None:  # type: ignore[no-untyped-def]
    import av

    rate = 48000
    total = int(rate * seconds)
    for start in range(0, total, 1024):
        count = min(1024, total - start)
        samples = (0.1 * np.sin(np.arange(start, start + count) / rate * 2 * np.pi * 440)).astype(np.float32)
        frame = av.AudioFrame.from_ndarray(samples[None], format="fltp", layout="mono")
        frame.sample_rate, frame.pts = rate, start
        out.mux(stream.encode(frame))
    out.mux(stream.encode(None))


@dataclass
class ClipFacts:
    """What a clip holds, as a player would see it."""

    frames: int
    times: list[float]  # presentation time of each frame, seconds
    size: tuple[int, int]
    pix_fmt: str
    rotation: int
    color: tuple[int, int, int, int]
    audio: list[tuple[int | None, bytes]]  # (pts, data) of every audio packet
    video_packets: list[bytes]
    subtitles: list[tuple[int | None, bytes]]


def clip_facts(path: Path) -> ClipFacts:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        ctx = stream.codec_context
        decoded = list(container.decode(stream))
        color = (int(ctx.color_primaries), int(ctx.color_trc), int(decoded[0].colorspace),
                 int(decoded[0].color_range))
    with av.open(str(path)) as container:
        audio = [(p.pts, bytes(p)) for p in container.demux(*container.streams.audio) if p.size] \
            if container.streams.audio else []
    with av.open(str(path)) as container:
        packets = [bytes(p) for p in container.demux(container.streams.video[0]) if p.size]
    with av.open(str(path)) as container:
        subtitles = [(p.pts, bytes(p)) for p in container.demux(*container.streams.subtitles) if p.size] \
            if container.streams.subtitles else []
    first = decoded[0]
    return ClipFacts(len(decoded), [round(float(f.pts * f.time_base), 4) for f in decoded], (first.width, first.height),
                     first.format.name, first.rotation, color, audio, packets, subtitles)


def frame_samples(path: Path) -> list[np.ndarray]:
    """Every frame of a clip as RGB samples (8 or 16 bits as the clip holds)."""
    import av

    with av.open(str(path)) as container:
        out = []
        for frame in container.decode(video=0):
            deep = max(c.bits for c in frame.format.components) > 8
            out.append(frame.to_ndarray(format="rgb48le" if deep else "rgb24"))
        return out


def video_job(inputs: list[Path], out: Path, model: Path, **video):  # type: ignore[no-untyped-def]
    """An upscale job for clips with the tiny model on the CPU; ``segment_frames`` shortens the resume segments."""
    from jdsr_cli.commands.upscale_job import UpscaleRequest, prepare_upscale

    request = UpscaleRequest(inputs=[str(p) for p in inputs], output=out, model=str(model), device="cpu",
                             precision="fp32", **{k: v for k, v in video.items() if k in ("video_codec", "crf")})
    job = prepare_upscale(request)
    if "segment_frames" not in video:
        return job
    # the library's knob for short segments (the CLI keeps about 5 s of frames)
    from dataclasses import replace

    from jdsr_cli.commands.video_job import FrameTransform, VideoOptions, video_processor

    options = VideoOptions(request.video_codec, request.crf, video["segment_frames"], video.get("overlap", True))
    frames = FrameTransform(job.transform.upscaler, job.transform.size)  # type: ignore[attr-defined]
    return replace(job, video=lambda progress: video_processor(frames, options, request.read, progress))
