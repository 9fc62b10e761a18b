"""Upscale throughput and memory on this machine, as ratios against baselines run in the same process.

Prints, for the chosen model and device:
  * output megapixels per second, whole image vs tiled (and their ratio);
  * peak memory while upscaling a large 8-bit image with tiles through ``upscale_image`` (CUDA: max allocated;
    CPU: peak RSS growth, measured in a child process so earlier runs do not hide it), and its ratio to the
    uint8 output (issue 16's target: ≤ 1.5 plus the model's working set);
  * OpenCV bicubic as the floor (its MP/s and the model's slowdown against it).

Run:  python bench/bench_upscale.py [--model imdn-x4] [--device auto] [--size 512] [--large 2048] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import sys
import time

import numpy as np


def _timed(fn, repeat: int) -> float:  # type: ignore[no-untyped-def]
    fn()  # warm-up (allocator, autotuning)
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


class _RssSampler:
    """Peak resident memory above the starting level, sampled every 5 ms from /proc (Linux).

    ``ru_maxrss`` is a lifetime high-water mark, so an import peak would hide the upscale's own peak.
    """

    def __init__(self) -> None:
        import os
        import threading

        self._page = os.sysconf("SC_PAGE_SIZE")
        self._stop = threading.Event()
        self.base = self._rss()
        self.peak = self.base
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _rss(self) -> int:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * self._page

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self._rss())

    def __enter__(self) -> _RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())


def in_fresh_process(target, *args):  # type: ignore[no-untyped-def]
    """What ``target(*args, queue)`` puts on its queue, run in a spawned process (a clean allocator and RSS)."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=target, args=(*args, queue))
    child.start()
    value = queue.get()
    child.join()
    return value


def _peak_rss_child(model: str, device: str, large: int, tile: int, queue) -> None:  # type: ignore[no-untyped-def]
    from jdsr_cli.process.host_allocator import tune_host_allocator

    tune_host_allocator()  # a fresh process, set up as the jdsr command sets up its own (JDSR_SYSTEM_ALLOCATOR=1: not)
    from jdsr_cli.checkpoints.resolve import resolve_model
    from jdsr_cli.commands.upscale import create_upscaler, upscale_image
    from jdsr_cli.io.imagedata import Image

    upscaler = create_upscaler(resolve_model(model, scale=None), device=device, tile=tile)
    image = Image(np.random.default_rng(0).random((large, large, 3), dtype=np.float32), bit_depth=8)
    upscaler.upscale(image.pixels[:64, :64])  # warm-up: allocator and kernels, not the large image
    try:
        with _RssSampler() as sampler:
            upscale_image(image, upscaler)  # the product path: an 8-bit photo comes back as uint8
        queue.put(sampler.peak - sampler.base)
    except OSError:  # no /proc: fall back to the lifetime high-water mark
        queue.put(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)


def main() -> None:
    parser = argparse.ArgumentParser(description="jdsr upscale benchmark")
    parser.add_argument("--model", default=None, help="model name/path (default: the bundled ×4 default)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--size", type=int, default=512, help="input side for the throughput runs")
    parser.add_argument("--tile", type=int, default=128, help="tile side for the tiled run")
    parser.add_argument("--large", type=int, default=2048, help="input side for the peak-memory run")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from jdsr_cli.process.host_allocator import tune_host_allocator

    tune_host_allocator()  # as the jdsr command does (JDSR_SYSTEM_ALLOCATOR=1: not)
    import cv2
    import torch

    from jdsr_cli.checkpoints.resolve import resolve_model
    from jdsr_cli.commands.upscale import create_upscaler

    loaded = resolve_model(args.model, scale=None)
    scale = loaded.config.scale
    image = np.random.default_rng(0).random((args.size, args.size, 3), dtype=np.float32)
    out_mp = (args.size * scale) ** 2 / 1e6

    whole = create_upscaler(loaded, device=args.device, tile=0)
    tiled = create_upscaler(loaded, device=args.device, tile=args.tile)
    t_whole = _timed(lambda: whole.upscale(image), args.repeat)
    t_tiled = _timed(lambda: tiled.upscale(image), args.repeat)
    image_u8 = (image * 255).astype(np.uint8)
    size = (args.size * scale, args.size * scale)
    t_bicubic = _timed(lambda: cv2.resize(image_u8, size, interpolation=cv2.INTER_CUBIC), max(args.repeat, 10))

    device = whole.device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        big = np.random.default_rng(0).random((args.large, args.large, 3), dtype=np.float32)
        base = torch.cuda.memory_allocated(device)
        result = create_upscaler(loaded, device=args.device, tile="auto").upscale(big)
        peak = torch.cuda.max_memory_allocated(device) - base
        peak_label, tile_used = "peak CUDA memory", result.tile
    else:
        peak = in_fresh_process(_peak_rss_child, args.model, args.device, args.large, args.tile)
        peak_label, tile_used = "peak RSS growth", args.tile

    report = {
        "model": loaded.name or loaded.source,
        "arch": loaded.config.arch,
        "scale": scale,
        "device": str(device),
        "precision": whole.precision.name,
        "threads": torch.get_num_threads(),
        "input": f"{args.size}x{args.size}",
        "whole_mp_per_s": round(out_mp / t_whole, 3),
        "tiled_mp_per_s": round(out_mp / t_tiled, 3),
        "tiled_over_whole_time": round(t_tiled / t_whole, 3),
        "tile": args.tile,
        "bicubic_cv2_mp_per_s": round(out_mp / t_bicubic, 1),
        "model_slowdown_vs_bicubic": round(t_whole / t_bicubic, 1),
        "large_input": f"{args.large}x{args.large}",
        peak_label.replace(" ", "_") + "_mib": round(peak / 2**20, 1),
        "large_tile": tile_used,
        "uint8_output_mib": round((args.large * scale) ** 2 * 3 / 2**20, 1),
        "peak_over_uint8_output": round(peak / ((args.large * scale) ** 2 * 3), 2),
        "command": "python bench/bench_upscale.py " + " ".join(sys.argv[1:]),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
