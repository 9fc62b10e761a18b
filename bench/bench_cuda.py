"""The product path on a CUDA GPU: speed of the default and the peers per precision, and agreement checks.

Through ``create_upscaler`` (what ``jdsr upscale --device cuda`` runs) on a ``--size``² random image at ×4, whole:
output MP/s at fp32, fp16 and bf16 for the default model and the random-weight peers of ``bench_speed.py`` (plus
``--candidate`` models), the engine's own ceiling there (a free network, ``engine_ceiling``), and for the default
model: the largest uint8 difference of tiled against whole and of fp16/bf16 against fp32. Needs a CUDA device;
prints one JSON report.

Run:  python bench/bench_cuda.py [--size 512] [--tile 128] [--repeat 5] [--candidate imdn-small-x4]
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import torch
from bench_speed import PEERS, best_time, engine_ceiling, random_checkpoint

PRECISIONS = ("fp32", "fp16", "bf16")


def max_uint8_difference(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(np.rint(a * 255).astype(np.int16) - np.rint(b * 255).astype(np.int16)).max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="imdn-x4")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--tile", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--candidate", action="append", default=[])
    parser.add_argument("--device", default="cuda", help="cuda (the point); cpu only to rehearse the script")
    parser.add_argument("--precisions", default=",".join(PRECISIONS))
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("bench_cuda.py: no CUDA device")
    precisions = args.precisions.split(",")

    from jdsr_cli.checkpoints.resolve import resolve_model
    from jdsr_cli.commands.upscale import create_upscaler

    image = np.random.default_rng(0).random((args.size, args.size, 3), dtype=np.float32)
    out_mp = (args.size * 4) ** 2 / 1e6
    models = {args.model: resolve_model(args.model, scale=None)}
    for name, (arch, kwargs) in PEERS.items():
        models[name] = random_checkpoint(f"{arch}:" + ",".join(f"{k}={int(v)}" for k, v in kwargs.items()), 4)
    for spec in args.candidate:
        models[spec] = random_checkpoint(spec, 4) if ":" in spec else resolve_model(spec, scale=None)

    speed: dict[str, dict[str, float]] = {}
    outputs: dict[str, np.ndarray] = {}
    for name, loaded in models.items():
        speed[name] = {}
        for precision in precisions:
            upscaler = create_upscaler(loaded, device=args.device, precision=precision, tile=0)
            seconds = best_time(lambda u=upscaler: u.upscale(image), args.repeat)
            speed[name][precision] = round(out_mp / seconds, 2)
            if name == args.model:
                outputs[precision] = upscaler.upscale(image).pixels
        print(json.dumps({name: speed[name]}), flush=True)
    tiled = create_upscaler(models[args.model], device=args.device, precision="fp32", tile=args.tile).upscale(image).pixels
    report = {
        "device": torch.cuda.get_device_name() if args.device.startswith("cuda") else args.device,
        "torch": torch.__version__, "input": f"{args.size}x{args.size}",
        "output_mp_per_s": speed,
        "speed_over_default": {name: {p: round(speed[name][p] / speed[args.model][p], 2) for p in precisions}
                               for name in speed},
        "max_uint8_diff": {"tiled_vs_whole_fp32": max_uint8_difference(tiled, outputs["fp32"]),
                           **{f"{p}_vs_fp32": max_uint8_difference(outputs[p], outputs["fp32"])
                              for p in precisions if p != "fp32"}},
        **engine_ceiling(args.size, args.repeat, args.device),
        "command": "python bench/bench_cuda.py " + " ".join(sys.argv[1:]),
    }
    print(json.dumps(report, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
