"""Training throughput: a full step (DataLoader + forward/backward/step) against the same step on a
pre-built batch, in one process, so the data pipeline's overhead shows as a ratio (target ≤ 1.10).

Run:  python bench/bench_train.py [--data ../shared/data/train] [--arch imdn] [--scale 4] [--batch-size 16]
                                  [--patch-size 48] [--steps 30] [--workers 2] [--device auto]
      python bench/bench_train.py --formats      # the pre-built step in fp32/NCHW, fp32/NHWC and bf16/NHWC,
                                                 # as time ratios against fp32/NCHW (what --precision and
                                                 # --channels-last of `jdsr train` buy on this machine)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from torch import nn


def main() -> None:
    parser = argparse.ArgumentParser(description="jdsr training-throughput benchmark")
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "train")
    parser.add_argument("--arch", default="imdn")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--patch-size", type=int, default=48)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--formats", action="store_true", help="compare precisions and memory formats instead")
    args = parser.parse_args()
    from jdsr_cli.process.host_allocator import tune_host_allocator

    tune_host_allocator()  # as the jdsr command does (JDSR_SYSTEM_ALLOCATOR=1: not)
    if args.formats:
        compare_formats(args)
        return

    from jdsr_cli.archs import REGISTRY
    from jdsr_cli.archs.registry import ArchConfig
    from jdsr_cli.engine.device import resolve_device
    from jdsr_cli.training.data import find_images, load_pairs
    from jdsr_cli.training.dataset import PatchDataset, StepSampler

    device = resolve_device(args.device)
    start = time.perf_counter()
    pairs, _ = load_pairs(find_images(args.data), args.scale, args.patch_size)
    decode_s = time.perf_counter() - start
    model = REGISTRY.build(ArchConfig(args.arch, args.scale, {})).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step(lr: torch.Tensor, hr: torch.Tensor) -> None:
        loss = nn.functional.l1_loss(model(lr.to(device, non_blocking=True)), hr.to(device, non_blocking=True))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    dataset = PatchDataset(pairs, args.scale, args.patch_size, seed=0)
    warm = 3
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=args.batch_size, sampler=StepSampler(0, args.steps + warm, args.batch_size),
        num_workers=args.workers, pin_memory=device.type == "cuda",
    )
    batches = iter(loader)
    for _ in range(warm):
        step(*next(batches))
    sync()
    start = time.perf_counter()
    for lr, hr in batches:
        step(lr, hr)
    sync()
    full = time.perf_counter() - start

    fixed = next(iter(torch.utils.data.DataLoader(dataset, batch_size=args.batch_size,
                                                  sampler=StepSampler(0, 1, args.batch_size))))
    lr, hr = fixed[0].to(device), fixed[1].to(device)
    sync()
    start = time.perf_counter()
    for _ in range(args.steps):
        step(lr, hr)
    sync()
    prebuilt = time.perf_counter() - start

    samples = args.steps * args.batch_size
    print(json.dumps({
        "arch": args.arch, "scale": args.scale, "device": str(device), "threads": torch.get_num_threads(),
        "batch_size": args.batch_size, "lr_patch": args.patch_size, "workers": args.workers,
        "images_decoded": len(pairs), "decode_and_pair_s": round(decode_s, 1),
        "full_step_samples_per_s": round(samples / full, 2),
        "prebuilt_batch_samples_per_s": round(samples / prebuilt, 2),
        "full_over_prebuilt_time": round(full / prebuilt, 3),
        "command": "python bench/bench_train.py " + " ".join(sys.argv[1:]),
    }, indent=2))


def _format_step(model: nn.Module, optimizer: torch.optim.Optimizer, lr: torch.Tensor, hr: torch.Tensor,
                 bf16: bool) -> None:
    """One training step as `jdsr train` runs it: autocast forward, fp32 loss, fp32 weights."""
    with torch.autocast(lr.device.type, dtype=torch.bfloat16, enabled=bf16):
        out = model(lr)
    loss = nn.functional.l1_loss(out.float(), hr)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def compare_formats(args: argparse.Namespace) -> None:
    """One pre-built batch, the same initial weights, each (precision, memory format) timed in turn."""
    from jdsr_cli.archs import REGISTRY
    from jdsr_cli.archs.registry import ArchConfig
    from jdsr_cli.engine.device import resolve_device

    device = resolve_device(args.device)
    generator = torch.Generator().manual_seed(0)
    lr = torch.rand(args.batch_size, 3, args.patch_size, args.patch_size, generator=generator).to(device)
    hr = torch.rand(args.batch_size, 3, args.patch_size * args.scale, args.patch_size * args.scale,
                    generator=generator).to(device)
    initial = REGISTRY.build(ArchConfig(args.arch, args.scale, {})).state_dict()
    variants = [("fp32", torch.contiguous_format), ("fp32", torch.channels_last), ("bf16", torch.channels_last)]
    seconds = {}
    for precision, memory_format in variants:
        model = REGISTRY.build(ArchConfig(args.arch, args.scale, {}))
        model.load_state_dict(initial)
        model.to(device, memory_format=memory_format).train()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
        x = lr.contiguous(memory_format=memory_format)

        autocast = precision == "bf16"
        for _ in range(3):
            _format_step(model, optimizer, x, hr, autocast)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        for _ in range(args.steps):
            _format_step(model, optimizer, x, hr, autocast)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        name = f"{precision}/{'NHWC' if memory_format is torch.channels_last else 'NCHW'}"
        seconds[name] = (time.perf_counter() - start) / args.steps
    baseline = seconds["fp32/NCHW"]
    print(json.dumps({
        "arch": args.arch, "scale": args.scale, "device": str(device), "threads": torch.get_num_threads(),
        "batch_size": args.batch_size, "lr_patch": args.patch_size, "steps": args.steps,
        "seconds_per_step": {k: round(v, 3) for k, v in seconds.items()},
        "time_vs_fp32_nchw": {k: round(v / baseline, 3) for k, v in seconds.items()},
        "command": "python bench/bench_train.py " + " ".join(sys.argv[1:]),
    }, indent=2))


if __name__ == "__main__":
    main()
