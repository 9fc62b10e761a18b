"""PyTorch against ONNX Runtime through the product path, in one process, for the bundled upscalers.

Each model goes through ``create_upscaler`` twice (``--backend torch`` at ``--precision auto`` and
``--backend onnxruntime``), the same whole image (or tiles with ``--tile``), runs alternated so both see the
same machine state; reported: output MP/s of each and their ratio (the figure that decides which backend
to recommend; absolute MP/s drift between runs, the ratio much less).

Run:  python bench/bench_backends.py [--models imdn-x2,imdn-x3,imdn-x4] [--size 192] [--tile 0] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="imdn-x2,imdn-x3,imdn-x4")
    parser.add_argument("--size", type=int, default=192, help="input side")
    parser.add_argument("--tile", type=int, default=0, help="0: whole image")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    import torch

    from jdsr_cli.checkpoints.resolve import resolve_model
    from jdsr_cli.commands.upscale import create_upscaler

    image = np.random.default_rng(0).random((args.size, args.size, 3), dtype=np.float32)
    rows = []
    for name in args.models.split(","):
        loaded = resolve_model(name, scale=None)
        runners = {backend: create_upscaler(loaded, device="cpu", tile=args.tile, backend=backend)
                   for backend in ("torch", "onnxruntime")}
        best = {backend: float("inf") for backend in runners}
        for runner in runners.values():
            runner.upscale(image)  # warm-up
        for _ in range(args.repeat):
            for backend, runner in runners.items():
                start = time.perf_counter()
                runner.upscale(image)
                best[backend] = min(best[backend], time.perf_counter() - start)
        out_mp = (args.size * loaded.config.scale) ** 2 / 1e6
        rows.append({"model": name, "torch_precision": runners["torch"].precision.name,
                     "torch_mp_per_s": round(out_mp / best["torch"], 3),
                     "onnxruntime_mp_per_s": round(out_mp / best["onnxruntime"], 3),
                     "onnxruntime_over_torch": round(best["torch"] / best["onnxruntime"], 2)})
        print(json.dumps(rows[-1]), flush=True)
    print(json.dumps({"threads": torch.get_num_threads(), "input": f"{args.size}x{args.size}", "tile": args.tile,
                      "rows": rows, "command": "python bench/bench_backends.py " + " ".join(sys.argv[1:])}, indent=1))


if __name__ == "__main__":
    main()
