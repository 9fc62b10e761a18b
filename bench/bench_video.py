"""Video throughput: `jdsr upscale clip.mp4`'s product path against the bare forward of the same model.

    python bench/bench_video.py                                    # photo-x4, 160×120 -> 640×480, 24 frames
    python bench/bench_video.py --model imdn-x2 --size 320x180 --frames 48 --batch-size 4 --device cuda

The clip (H.264 + AAC, made here with PyAV) goes through ``upscale_video`` (probe, decode, YUV -> RGB, the network
in batches, RGB -> YUV, x264, segments, mux with the audio copied) and, on the same device with the same precision
and batch, the bare forward: the frames already on the device as one channels-last batch, ``model(x)`` and
nothing else. Rounds alternate (best of ``--repeat``): a shared machine's speed drifts. On a CPU two ratios are
also measured within one pass, so drift between passes cannot skew them: the product pass over the forward calls
inside it, and over a bare forward of each of its batches run right after the product's own (``paired``).
Also timed, to say where the rest goes: decoding alone, encoding alone, and the product path without its
decode/encode threads.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch


def make_clip(path: Path, width: int, height: int, frames: int) -> None:
    import av

    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=24)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.codec_context.time_base = Fraction(1, 24)
        sound = out.add_stream("aac", rate=48000)
        for i in range(frames):
            rgb = np.stack([0.5 + 0.4 * np.sin((x + 3 * i) / 11), 0.5 + 0.4 * np.cos((y - i) / 7),
                            0.5 + 0.3 * np.sin((x * y) / 900 + i / 4)], axis=2)
            frame = av.VideoFrame.from_ndarray((rgb * 255).astype(np.uint8), format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        samples = int(48000 * frames / 24)
        for start in range(0, samples, 1024):
            audio = np.zeros((1, min(1024, samples - start)), np.float32)
            chunk = av.AudioFrame.from_ndarray(audio, format="fltp", layout="mono")
            chunk.sample_rate, chunk.pts = 48000, start
            out.mux(sound.encode(chunk))
        out.mux(sound.encode(None))


def decoded_frames(path: Path) -> np.ndarray:
    from jdsr_cli.io.video import VideoReader, probe_video

    reader = VideoReader(probe_video(path))
    return np.stack([f.pixels for f in reader.frames()])


def bare_forward(upscaler, frames: np.ndarray) -> float:  # type: ignore[no-untyped-def]
    """Seconds for the network alone over every frame, in the product path's batches, input already on the device."""
    device, batch = upscaler.device, upscaler.batch_size
    x = torch.from_numpy(frames.astype(np.float32) / 255).permute(0, 3, 1, 2).to(device)
    x = x.contiguous(memory_format=torch.channels_last)
    precision = upscaler.precision
    autocast = torch.autocast(device_type=device.type, dtype=precision.dtype) if precision.is_reduced else None
    _sync(device)
    start = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(x), batch):
            if autocast is not None:
                with autocast:
                    upscaler.model(x[i : i + batch])
            else:
                upscaler.model(x[i : i + batch])
    _sync(device)
    return time.perf_counter() - start


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def product_path(upscaler, size, clip: Path, out: Path, overlap: bool = True,  # type: ignore[no-untyped-def]
                 inside: list[float] | None = None, paired: list[float] | None = None) -> float:
    """Seconds for ``upscale_video`` on the whole clip. On a CPU, measured in that same pass (so the machine's
    drift between passes cannot skew them): the seconds inside the network's forward calls (to ``inside``), and
    with ``paired`` the seconds of a second, bare forward of each batch run right after the product's own (to
    ``paired``; those seconds are taken out of the returned time)."""
    from jdsr_cli.commands.imagejob import ReadOptions
    from jdsr_cli.commands.video_job import FrameTransform, VideoOptions, upscale_video

    out.unlink(missing_ok=True)
    spent, hooks, extra = [0.0, 0.0], [], [0.0, False]  # forward total, its start; paired total, re-entry flag
    model = upscaler.model
    if inside is not None and upscaler.device.type == "cpu":
        def before(*_: object) -> None:
            if not extra[1]:
                spent[1] = time.perf_counter()

        def after(module: torch.nn.Module, args: tuple, output: object) -> None:
            if extra[1]:
                return
            spent[0] += time.perf_counter() - spent[1]
            if paired is not None:  # the same batch again, bare, under the same load
                extra[1] = True
                start = time.perf_counter()
                module(*args)
                extra[0] += time.perf_counter() - start
                extra[1] = False

        hooks = [model.register_forward_pre_hook(before), model.register_forward_hook(after)]
    start = time.perf_counter()
    try:
        upscale_video(clip, out, FrameTransform(upscaler, size), VideoOptions(overlap=overlap), ReadOptions())
        _sync(upscaler.device)
    finally:
        for hook in hooks:
            hook.remove()
    if hooks and inside is not None:
        inside.append(spent[0])
    if hooks and paired is not None:
        paired.append(extra[0])
    return time.perf_counter() - start - extra[0]


def encode_only(clip: Path, upscaled: np.ndarray, out_size: tuple[int, int]) -> float:
    from jdsr_cli.io.video import probe_video
    from jdsr_cli.io.video_encode import SegmentEncoder, encoder_settings

    info = probe_video(clip)
    settings = encoder_settings(info, out_size[0], out_size[1], Path("x.mp4"), None, None)
    start = time.perf_counter()
    encoder = SegmentEncoder(settings)
    for i, frame in enumerate(upscaled):
        encoder.encode(i, frame)
    encoder.finish()
    return time.perf_counter() - start


def profile(path: Path, run) -> None:  # type: ignore[no-untyped-def]
    """The functions one product pass spends its time in (cumulative and own time, the top 30 of each)."""
    import cProfile
    import io
    import pstats

    profiler = cProfile.Profile()
    profiler.runcall(run)
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("cumulative").print_stats(30)
    stats.sort_stats("tottime").print_stats(30)
    path.write_text(text.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="photo-x4")
    parser.add_argument("--size", default="160x120", help="input WxH")
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--profile", type=Path, default=None, help="write the cProfile of one product pass here")
    args = parser.parse_args()

    from jdsr_cli.checkpoints.resolve import resolve_model
    from jdsr_cli.commands.upscale import OutputSize, create_upscaler
    from jdsr_cli.process.host_allocator import tune_host_allocator

    tune_host_allocator()  # as the jdsr command does
    width, height = (int(v) for v in args.size.lower().split("x"))
    upscaler = create_upscaler(resolve_model(args.model, scale=None), device=args.device, precision=args.precision,
                               batch_size=args.batch_size)
    size = OutputSize()
    out_w, out_h = width * upscaler.scale, height * upscaler.scale
    with tempfile.TemporaryDirectory() as folder:
        clip, out = Path(folder) / "clip.mp4", Path(folder) / "clip_up.mp4"
        make_clip(clip, width, height, args.frames)
        frames = decoded_frames(clip)
        upscaled = upscaler.upscale_frames(frames[:1].astype(np.float32) / 255)  # warm-up (and the encode input)
        bare_forward(upscaler, frames[: upscaler.batch_size])
        times: dict[str, list[float]] = {"bare": [], "product": [], "product_no_overlap": [], "decode": [],
                                         "encode": []}
        ratios: list[float] = []  # a product pass over the forward time inside it (CPU)
        paired_ratios: list[float] = []  # a product pass over bare forwards of the same batches, run beside it
        paired_serial: list[float] = []  # the same without the decode/encode threads
        for _ in range(args.repeat):
            times["bare"].append(bare_forward(upscaler, frames))
            inside: list[float] = []
            times["product"].append(product_path(upscaler, size, clip, out, inside=inside))
            ratios.extend(times["product"][-1] / forward for forward in inside)
            if upscaler.device.type == "cpu":
                twin: list[float] = []
                alone = product_path(upscaler, size, clip, out, inside=[], paired=twin)
                paired_ratios.append(alone / twin[0])
            times["product_no_overlap"].append(product_path(upscaler, size, clip, out, overlap=False))
            if upscaler.device.type == "cpu":
                twin = []
                alone = product_path(upscaler, size, clip, out, overlap=False, inside=[], paired=twin)
                paired_serial.append(alone / twin[0])
            start = time.perf_counter()
            decoded_frames(clip)
            times["decode"].append(time.perf_counter() - start)
            times["encode"].append(encode_only(clip, np.repeat(upscaled, len(frames), axis=0), (out_w, out_h)))
        if args.profile is not None:
            profile(args.profile, lambda: product_path(upscaler, size, clip, out))
    best = {name: min(values) for name, values in times.items()}
    n, megapixels = len(frames), len(frames) * out_w * out_h / 1e6
    result = {
        "model": args.model, "device": str(upscaler.device), "precision": upscaler.precision.name,
        "batch": upscaler.batch_size, "threads": torch.get_num_threads(), "frames": n,
        "input": [width, height], "output": [out_w, out_h],
        "seconds_best": {k: round(v, 3) for k, v in best.items()},
        "bare_fps": round(n / best["bare"], 3), "bare_mp_s": round(megapixels / best["bare"], 3),
        "product_fps": round(n / best["product"], 3), "product_mp_s": round(megapixels / best["product"], 3),
        "product_over_bare": round(best["product"] / best["bare"], 3),
        "no_overlap_over_bare": round(best["product_no_overlap"] / best["bare"], 3),
        "product_over_its_own_forward": [round(r, 3) for r in ratios],
        "product_over_paired_bare": [round(r, 3) for r in paired_ratios],
        "no_overlap_over_paired_bare": [round(r, 3) for r in paired_serial],
        "all_seconds": {k: [round(v, 3) for v in values] for k, values in times.items()},
    }
    print(json.dumps(result, indent=2))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
