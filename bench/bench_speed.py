"""Speed on this CPU against the peers, in one process (issue 16): one table, ratios to SRVGGNetCompact fp32.

For each model at ×4 on a ``--size``² input: output MP/s of the bare forward (channels-last, inference mode)
in fp32 and bf16, its multiply-adds per output pixel, and its share of this machine's sustained 3×3-conv rate
(a chain of eight 64→64 convs timed in the same rounds, fp32 and bf16); then the default model through the product path
(``create_upscaler``, ``--precision auto``, whole image and tiled, torch and onnxruntime) and OpenCV bicubic;
then the large-image peak memory as a ratio to the uint8 output (``bench_upscale.py``'s child process), and
how fast it grows with the output between ``--large``/2 and ``--large`` (the model's working set cancels out).
Peers run with random weights (speed does not depend on them). Absolute MP/s drift from run to run on a
shared machine; the ratios, measured alternately in one process, much less.

Run:  python bench/bench_speed.py [--size 192] [--repeat 3] [--large 1024] [--tile 128] [--candidate M ...] [--memory-only]
      python bench/bench_speed.py --engine-only --size 512   # the engine's own cost around a free network
      python bench/bench_speed.py --tiling-only --size 1024 --tile 512 --repeat 2   # tiled/whole at a photo's geometry
      python bench/bench_speed.py --allocator-only --size 1024 --tile 512   # the host allocator's settings: on/off

Every run tunes the host allocator as the ``jdsr`` command does (``--system-allocator``: not).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

PEERS = {  # name → (arch, kwargs): random-weight peers, ×4
    "SRVGGNetCompact 64×32 (realesr-general-x4v3)": ("srvgg", {"num_feat": 64, "num_conv": 32}),
    "SPAN 48, folded": ("span", {"feature_channels": 48, "folded": True}),
    "FSRCNN": ("fsrcnn", {"d": 56, "s": 12, "m": 4}),
}


def best_time(fn: Callable[[], object], repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def interleaved_best_times(fns: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    """Each function's best time over ``repeat`` rounds, every round running every function once in turn.

    This VM's speed drifts by tens of percent within minutes (its measured conv rate: 65 and 89 GMAC/s in two runs
    ten minutes apart); timing one model after another turns that drift into false ratios, interleaving spreads
    every model's samples over the same stretch of time."""
    for fn in fns.values():
        fn()  # warm-up: allocations, oneDNN primitive caches
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeat):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def macs_per_output_pixel(net: torch.nn.Module, scale: int, side: int = 32) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(torch.rand(1, 3, side, side))
    return counter.get_total_flops() / 2 / (side * scale) ** 2


def bare_forward(net: torch.nn.Module, x: torch.Tensor, dtype: torch.dtype | None) -> Callable[[], object]:
    net = net.eval().to(memory_format=torch.channels_last)
    x = x.contiguous(memory_format=torch.channels_last)

    def run() -> object:
        with torch.inference_mode(), torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
            return net(x)

    return run


CONV_CHAIN = "64→64 3×3 conv chain"  # the yardstick of the machine's sustained conv rate, timed among the models
CHAIN_LENGTH = 8


def conv_chain(dtype: torch.dtype | None, side: int) -> tuple[Callable[[], object], float]:
    """A forward of eight 64→64 3×3 convs on a side² map, with its multiply-adds: the machine's sustained conv rate
    in ``dtype`` (bf16: weights and input cast, as the product path runs a bf16 model). Timed in the same rounds as
    the models it is compared with: this VM's speed drifted 2.5× between two rounds a second apart (bf16 conv rate
    400 then 1000 GMAC/s), so a rate measured apart from them gave shares of 1.4-1.5."""
    chain = torch.nn.Sequential(*(torch.nn.Conv2d(64, 64, 3, padding=1) for _ in range(CHAIN_LENGTH)))
    x = torch.rand(1, 64, side, side)
    if dtype is not None:
        chain, x = chain.to(dtype), x.to(dtype)
    return bare_forward(chain, x, None), CHAIN_LENGTH * 64 * 64 * 9 * side * side


def random_checkpoint(spec: str, scale: int):  # type: ignore[no-untyped-def]
    """``arch:key=value,...`` with random weights, saved and resolved like a user's checkpoint (product path)."""
    import tempfile

    from jdsr_cli.archs import REGISTRY, ArchConfig
    from jdsr_cli.checkpoints.resolve import resolve_model
    from jdsr_cli.checkpoints.save import save_checkpoint

    arch, _, rest = spec.partition(":")
    kwargs = {k: int(v) for k, v in (item.split("=") for item in rest.split(",") if item)}
    config = ArchConfig(arch, scale, kwargs)
    folder = Path(tempfile.mkdtemp(prefix="jdsr-bench-")) / arch
    save_checkpoint(folder, REGISTRY.build(config).eval(), config)
    return resolve_model(str(folder), scale=None)


def large_image_memory(model: str, large: int, tile: int, scale: int) -> dict[str, object]:
    """Peak RSS growth of a large² 8-bit photo upscaled in ``tile`` px tiles to uint8 (a fresh child process each),
    as a ratio to the output, and how fast it grows with the output between large/2 and large (the issue's
    measure: the model's working set cancels out)."""
    from bench_upscale import _peak_rss_child, in_fresh_process

    def peak_rss(side: int) -> int:
        return int(in_fresh_process(_peak_rss_child, model, "cpu", side, tile))

    half = large // 2
    peak, peak_half = peak_rss(large), peak_rss(half)
    output_bytes, output_half = (large * scale) ** 2 * 3, (half * scale) ** 2 * 3
    return {"large_input": f"{large}x{large}", "large_tile": tile, "large_peak_rss_growth_mib": round(peak / 2**20, 1),
            "large_peak_over_uint8_output": round(peak / output_bytes, 2),
            "peak_growth_over_output_growth": round((peak - peak_half) / (output_bytes - output_half), 2)}


def tiled_vs_whole(loaded, size: int, tile: int, repeat: int, scale: int = 4) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """A loaded model through the product path (``--precision auto``) on one random image, whole and in tiles: the
    whole image's rate, the time ratio, and how much of it is geometry (overlapping tiles recompute their shared
    borders) rather than the tiling engine."""
    from jdsr_cli.commands.upscale import create_upscaler
    from jdsr_cli.engine.tiling import plan_tiles

    image = np.random.default_rng(0).random((size, size, 3), dtype=np.float32)
    whole, tiled = (create_upscaler(loaded, device="cpu", tile=t) for t in (0, tile))
    seconds = interleaved_best_times({"whole": lambda: whole.upscale(image), "tiled": lambda: tiled.upscale(image)},
                                     repeat)
    plan = plan_tiles(size, size, tile, tiled.overlap, tiled.size_requirement.multiple_of)
    computed = sum(t.height * t.width for t in plan) / size**2
    ratio = seconds["tiled"] / seconds["whole"]
    return {"tiling_input": f"{size}x{size}", "tiling_tile": tile, "tiles": len(plan),
            "precision": whole.precision.name, "whole_mp_per_s": round((size * scale) ** 2 / 1e6 / seconds["whole"], 3),
            "tiled_over_whole_time": round(ratio, 3), "tiled_computed_pixels_over_whole": round(computed, 3),
            "tiled_engine_overhead": round(ratio / computed, 3)}


class _FreeNetwork(torch.nn.Module):
    """A ×4 'network' that costs one pass over its output (nearest neighbour), to time the engine around it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.interpolate(x, scale_factor=4, mode="nearest")


def engine_ceiling(size: int, repeat: int, device: str = "cpu") -> dict[str, object]:
    """The product path's own cost: ``Upscaler`` (whole image, fp32, float and uint8 output) around a network that
    costs nearly nothing, against that network alone. Bounds any model's output MP/s on ``device``; on a GPU, where
    the network is fast, it is what sets the pace."""
    from jdsr_cli.engine.device import Precision
    from jdsr_cli.engine.upscaler import Upscaler

    image = np.random.default_rng(0).random((size, size, 3), dtype=np.float32)
    upscaler = Upscaler(_FreeNetwork(), scale=4, device=torch.device(device), precision=Precision("fp32", torch.float32),
                        tile=0)
    x = torch.from_numpy(image.transpose(2, 0, 1).copy())[None].to(device)

    def network_alone() -> object:
        out = upscaler.model(x)
        return out.sum().item()  # synchronises a GPU

    out_mp = (size * 4) ** 2 / 1e6
    seconds = interleaved_best_times({"float": lambda: upscaler.upscale(image),
                                      "uint8": lambda: upscaler.upscale(image, depth=8), "network": network_alone}, repeat)
    return {"engine_input": f"{size}x{size}",
            "engine_ceiling_mp_per_s": {k: round(out_mp / seconds[k], 1) for k in ("float", "uint8")},
            "engine_ms_per_output_mp": {k: round((seconds[k] - seconds["network"]) * 1e3 / out_mp, 1)
                                        for k in ("float", "uint8")}}


def _allocator_child(tuned: bool, model: str, size: int, tile: int, repeat: int, queue) -> None:  # type: ignore[no-untyped-def]
    import resource

    if tuned:
        from jdsr_cli.process.host_allocator import tune_host_allocator

        tune_host_allocator()
    from jdsr_cli.checkpoints.resolve import resolve_model
    from jdsr_cli.commands.upscale import create_upscaler

    upscaler = create_upscaler(resolve_model(model, scale=None), device="cpu", tile=tile)
    image = np.random.default_rng(0).random((size, size, 3), dtype=np.float32)
    upscaler.upscale(image)  # warm-up
    before = resource.getrusage(resource.RUSAGE_SELF)
    seconds = best_time(lambda: upscaler.upscale(image), repeat)
    after = resource.getrusage(resource.RUSAGE_SELF)
    queue.put({"seconds": seconds, "faults_per_run": (after.ru_minflt - before.ru_minflt) / repeat,
               "system_cpu_s_per_run": (after.ru_stime - before.ru_stime) / repeat,
               "max_rss_mib": after.ru_maxrss / 1024})


def allocator_on_off(model: str, size: int, tile: int, repeat: int, rounds: int = 3) -> dict[str, object]:
    """The product path with and without the host allocator's settings, in fresh processes taken alternately
    (the settings are process-wide): best time of each, page faults and system CPU time per upscale, max RSS."""
    from bench_upscale import in_fresh_process

    results: dict[bool, list[dict[str, float]]] = {True: [], False: []}
    for _ in range(rounds):
        for tuned in (False, True):
            results[tuned].append(in_fresh_process(_allocator_child, tuned, model, size, tile, repeat))
    best = {tuned: min(runs, key=lambda r: r["seconds"]) for tuned, runs in results.items()}
    out_mp = (size * 4) ** 2 / 1e6
    return {"input": f"{size}x{size}", "tile": tile, "rounds": rounds,
            **{f"{'tuned' if tuned else 'system'}_{key}": round(value, 3 if key == "seconds" else 1)
               for tuned, row in best.items() for key, value in row.items()},
            "tuned_mp_per_s": round(out_mp / best[True]["seconds"], 3),
            "system_mp_per_s": round(out_mp / best[False]["seconds"], 3),
            "tuned_speedup": round(best[False]["seconds"] / best[True]["seconds"], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="imdn-x4", help="the default model (bundled name or path)")
    parser.add_argument("--size", type=int, default=192)
    parser.add_argument("--tile", type=int, default=128)
    parser.add_argument("--large", type=int, default=1024, help="input side of the peak-memory run")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--candidate", action="append", default=None,
                        help="also timed through the product path, with its ratio to the default: a model as --model "
                             "takes it (e.g. the fast imdn-small-x4) or ARCH:key=value,... with random weights "
                             "(default span:feature_channels=48, issue 16's ≥ 1.8× question), with @PRECISION to "
                             "force one (span-x4@bf16); repeatable; 'none' to skip")
    parser.add_argument("--engine-only", action="store_true",
                        help="only the engine's own cost around a free network at --size (whole image)")
    parser.add_argument("--memory-only", action="store_true", help="only the large-image peak memory (no timing)")
    parser.add_argument("--tiling-only", action="store_true",
                        help="only tiled against whole for the default model at --size and --tile (e.g. --size 1024 "
                             "--tile 512, the geometry of a photo on the CPU's automatic tiles)")
    parser.add_argument("--allocator-only", action="store_true",
                        help="only the product path at --size and --tile with and without the host allocator settings")
    parser.add_argument("--system-allocator", action="store_true",
                        help="leave the host allocator as it is (the jdsr command tunes it; see process/host_allocator.py)")
    args = parser.parse_args()
    if args.allocator_only:
        report = allocator_on_off(args.model, args.size, args.tile, args.repeat)
        print(json.dumps({**report, "command": "python bench/bench_speed.py " + " ".join(sys.argv[1:])}, indent=1))
        return
    from jdsr_cli.process.host_allocator import OPT_OUT_VARIABLE, tune_host_allocator

    if args.system_allocator:
        os.environ[OPT_OUT_VARIABLE] = "1"  # the memory child processes follow
    tune_host_allocator()  # as the jdsr command does, before the first large allocation
    if args.tiling_only:
        from jdsr_cli.checkpoints.resolve import resolve_model

        report = tiled_vs_whole(resolve_model(args.model, scale=None), args.size, args.tile, args.repeat)
        print(json.dumps({**report, "command": "python bench/bench_speed.py " + " ".join(sys.argv[1:])}, indent=1))
        return
    if args.engine_only:
        report = engine_ceiling(args.size, args.repeat)
        print(json.dumps({**report, "command": "python bench/bench_speed.py " + " ".join(sys.argv[1:])}, indent=1))
        return
    if args.memory_only:
        report = large_image_memory(args.model, args.large, args.tile, 4)
        print(json.dumps({**report, "command": "python bench/bench_speed.py " + " ".join(sys.argv[1:])}, indent=1))
        return

    import cv2

    from jdsr_cli.archs import REGISTRY, ArchConfig
    from jdsr_cli.checkpoints.resolve import resolve_model
    from jdsr_cli.commands.upscale import create_upscaler

    torch.manual_seed(0)
    scale = 4
    x = torch.rand(1, 3, args.size, args.size)
    out_mp = (args.size * scale) ** 2 / 1e6
    rates: dict[str, float] = {}
    loaded = resolve_model(args.model, scale=None)
    nets = {f"{args.model} (bare)": loaded.model, **{name: REGISTRY.build(ArchConfig(arch, scale, kwargs))
                                                      for name, (arch, kwargs) in PEERS.items()}}
    rows = [{"model": name, "params": sum(p.numel() for p in net.parameters()),
             "macs_per_output_px": round(macs_per_output_pixel(net, scale))} for name, net in nets.items()]
    for label, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
        chain, chain_macs = conv_chain(dtype, args.size)
        seconds = interleaved_best_times({CONV_CHAIN: chain, **{name: bare_forward(net, x, dtype)
                                                                for name, net in nets.items()}}, args.repeat)
        rates[label] = chain_macs / seconds[CONV_CHAIN]
        for row in rows:
            mp_s = out_mp / seconds[row["model"]]
            row[f"{label}_mp_per_s"] = round(mp_s, 3)
            row[f"{label}_share_of_conv_rate"] = round(mp_s * 1e6 * row["macs_per_output_px"] / rates[label], 3)
    for row in rows:
        print(json.dumps(row), flush=True)
    baseline = rows[1]["fp32_mp_per_s"]  # SRVGGNetCompact fp32: the yardstick
    for row in rows:
        row["fp32_vs_srvgg_fp32"] = round(row["fp32_mp_per_s"] / baseline, 2)
        row["bf16_vs_srvgg_fp32"] = round(row["bf16_mp_per_s"] / baseline, 2)

    image = np.random.default_rng(0).random((args.size, args.size, 3), dtype=np.float32)
    tiling = tiled_vs_whole(loaded, args.size, args.tile, args.repeat, scale)
    product: dict[str, object] = {}
    runs = [("auto whole", loaded, {"tile": 0}), ("onnxruntime whole", loaded, {"tile": 0, "backend": "onnxruntime"})]
    candidates = [c for c in (args.candidate or ["span:feature_channels=48"]) if c != "none"]
    for spec in candidates:
        name, _, forced = spec.partition("@")  # span-x4@bf16: that precision instead of auto
        model = random_checkpoint(name, scale) if ":" in name else resolve_model(name, scale=None)
        runs += [(f"{spec} auto whole", model, {"tile": 0, "precision": forced or "auto"})]
        if not forced:
            runs += [(f"{spec} onnxruntime whole", model, {"tile": 0, "backend": "onnxruntime"})]
    upscalers = {}
    for label, model, kwargs in runs:
        try:
            upscalers[label] = create_upscaler(model, device="cpu", **kwargs)
        except Exception as error:  # noqa: BLE001 - the onnx extra may be missing: say so in the table
            product[label] = f"unavailable: {error}"
    yardstick = rows[1]["model"]  # SRVGGNetCompact's bare fp32 forward, timed again beside the product path
    # torch runs and ONNX Runtime runs in separate rounds: ORT's pool threads spin on after a run and slowed the
    # torch run after them by up to 30 %
    seconds = {}
    for backend_is_ort in (False, True):
        chosen = {label: (lambda u=u: u.upscale(image)) for label, u in upscalers.items()
                  if ("onnxruntime" in label) == backend_is_ort}
        if not backend_is_ort:
            chosen[yardstick] = bare_forward(nets[yardstick], x, None)
            auto_dtype = upscalers["auto whole"].precision.dtype
            chosen[CONV_CHAIN], chain_macs = conv_chain(None if auto_dtype == torch.float32 else auto_dtype, args.size)
        seconds.update(interleaved_best_times(chosen, args.repeat))
    for label, upscaler in upscalers.items():
        product[label] = {"precision": upscaler.precision.name, "mp_per_s": round(out_mp / seconds[label], 3)}
    whole = product["auto whole"]
    u8 = (image * 255).astype(np.uint8)
    bicubic = out_mp / best_time(lambda: cv2.resize(u8, (args.size * scale,) * 2, interpolation=cv2.INTER_CUBIC),
                                 max(10, args.repeat))

    report = {
        "cpu_threads": torch.get_num_threads(), "host_allocator": "system" if args.system_allocator else "tuned",
        "input": f"{args.size}x{args.size}", "scale": scale,
        "conv_rate_gmac_per_s": {k: round(v / 1e9, 1) for k, v in rates.items()},
        "models": rows, "product_path": product,
        "default_auto_vs_srvgg_fp32": round(seconds[yardstick] / seconds["auto whole"], 2),  # same stretch of time
        "default_auto_share_of_conv_rate": round(  # in auto's precision, the conv chain timed in the same rounds
            out_mp * 1e6 * rows[0]["macs_per_output_px"] / seconds["auto whole"] / (chain_macs / seconds[CONV_CHAIN]), 3),
        "conv_rate_beside_product_gmac_per_s": round(chain_macs / seconds[CONV_CHAIN] / 1e9, 1),
        "candidates_auto_vs_default_auto": {spec: round(product[f"{spec} auto whole"]["mp_per_s"] / whole["mp_per_s"], 2)
                                            for spec in candidates},
        **{k: v for k, v in tiling.items() if k.startswith("tiled_") or k == "tiles"},
        "opencv_bicubic_mp_per_s": round(bicubic, 1),
        **engine_ceiling(args.size, args.repeat),
        **large_image_memory(args.model, args.large, args.tile, scale),
        "targets": "default auto ≥ 3× SRVGGNetCompact fp32 and ≥ 0.75 of the bf16 conv rate; tiled/whole ≤ 1.10; "
                   "peak growth ≤ 1.5× the uint8 output growth (the peak: ≤ 1.5× the output + the working set)",
        "command": "python bench/bench_speed.py " + " ".join(sys.argv[1:]),
    }
    print(json.dumps(report, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
