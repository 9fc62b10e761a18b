"""Upscales beside other busy processes: torch's fixed thread count against CpuShare's (jdsr_cli.process.cpu_share).

Three scenarios, each timed both ways in rounds that alternate which goes first:
  * alone: nothing else runs (sharing must cost nothing here);
  * one busy core: a child process spins on one core (a browser tab, a compile);
  * two jdsr: two worker processes upscale side by side, both fixed or both sharing (aggregate images/s).
Prints images per second and the ratio sharing / fixed for each (above 1: sharing is faster).

Run:  python bench/bench_cpu_share.py [--model imdn-x4] [--size 256] [--rounds 4] [--seconds 8]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

_SPIN = "while True: pass"


def _upscaler(model: str):  # type: ignore[no-untyped-def]
    from jdsr_cli.checkpoints.resolve import resolve_model
    from jdsr_cli.commands.upscale import create_upscaler

    return create_upscaler(resolve_model(model, scale=None), device="cpu", tile=0)


def _image(size: int):  # type: ignore[no-untyped-def]
    import numpy as np

    return np.random.default_rng(0).random((size, size, 3), dtype=np.float32)


def _images_per_second(upscaler, image, seconds: float, share) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """Upscale ``image`` repeatedly for ``seconds``; ``share`` (or None: fixed threads) looks before each.

    Returns images per second and the mean thread count they ran on."""
    import torch

    done, threads, start = 0, 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        if share is not None:
            share.adjust()
        threads += torch.get_num_threads()
        upscaler.upscale(image, depth=8)
        done += 1
    return done / (time.perf_counter() - start), threads / max(done, 1)


def _in_process(model: str, size: int, rounds: int, seconds: float, busy_core: bool) -> dict[str, float]:
    import torch

    from jdsr_cli.process.cpu_share import CpuShare

    most = torch.get_num_threads()
    spinner = subprocess.Popen([sys.executable, "-c", _SPIN]) if busy_core else None
    try:
        upscaler, image = _upscaler(model), _image(size)
        upscaler.upscale(image, depth=8)  # warm-up
        fixed, shared, threads = [], [], []
        for round_ in range(rounds):
            for sharing in (False, True) if round_ % 2 == 0 else (True, False):  # alternate which goes first
                torch.set_num_threads(most)
                if not sharing:
                    fixed.append(_images_per_second(upscaler, image, seconds, None)[0])
                    continue
                share = CpuShare(max_threads=most)
                time.sleep(0.3)  # the first look needs a window, as the command's model loading gives it
                rate, mean_threads = _images_per_second(upscaler, image, seconds, share)
                shared.append(rate)
                threads.append(mean_threads)
        torch.set_num_threads(most)
    finally:
        if spinner is not None:
            spinner.kill()
    return _summary(fixed, shared, threads)


def _worker(model: str, size: int, seconds: float, sharing: bool) -> None:
    from jdsr_cli.process.cpu_share import CpuShare

    share = CpuShare() if sharing else None  # before torch is loaded, as in the command
    upscaler, image = _upscaler(model), _image(size)
    upscaler.upscale(image, depth=8)
    rate, threads = _images_per_second(upscaler, image, seconds, share)
    print(rate, threads)


def _two_processes(model: str, size: int, rounds: int, seconds: float) -> dict[str, float]:
    fixed, shared, threads = [], [], []
    for round_ in range(rounds):
        order = ((False, fixed), (True, shared)) if round_ % 2 == 0 else ((True, shared), (False, fixed))
        for sharing, results in order:
            argv = [sys.executable, __file__, "--worker", "share" if sharing else "fixed", "--model", model,
                    "--size", str(size), "--seconds", str(seconds)]
            children = [subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) for _ in range(2)]
            lines = [child.communicate()[0].split() for child in children]
            results.append(sum(float(line[0]) for line in lines))
            if sharing:
                threads.append(statistics.mean(float(line[1]) for line in lines))
    return _summary(fixed, shared, threads)


def _summary(fixed: list[float], shared: list[float], threads: list[float]) -> dict[str, float]:
    f, s = statistics.median(fixed), statistics.median(shared)
    return {"fixed_images_per_s": round(f, 3), "sharing_images_per_s": round(s, 3), "sharing_over_fixed": round(s / f, 2),
            "sharing_mean_threads": round(statistics.mean(threads), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="imdn-x4")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--worker", choices=("fixed", "share"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args.model, args.size, args.seconds, args.worker == "share")
        return
    import torch

    from jdsr_cli.process.host_allocator import tune_host_allocator

    tune_host_allocator()  # as the jdsr command does
    results = {
        "model": args.model, "size": args.size, "threads": torch.get_num_threads(),
        "alone": _in_process(args.model, args.size, args.rounds, args.seconds, busy_core=False),
        "one_busy_core": _in_process(args.model, args.size, args.rounds, args.seconds, busy_core=True),
        "two_jdsr": _two_processes(args.model, args.size, args.rounds, args.seconds),
    }
    for name in ("alone", "one_busy_core", "two_jdsr"):
        r = results[name]
        print(f"{name:14s} fixed {r['fixed_images_per_s']:7.2f} img/s  sharing {r['sharing_images_per_s']:7.2f} img/s"
              f"  sharing/fixed {r['sharing_over_fixed']:.2f}  (sharing ran on {r['sharing_mean_threads']:.2f} threads)")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
