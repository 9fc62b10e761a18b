"""8-bit PNG writing: Pillow against our streaming encoder, on a large upscaled photo (time, bytes, memory).

Why: above ``writer.STREAMING_PNG_PIXELS`` the writer uses our encoder, because Pillow first copies an RGB
image into 4 bytes a pixel. This checks that the switch costs no time and few bytes, and shows the memory it
saves. The image is a mosaic of Set14 photos enlarged ×4 with MATLAB bicubic (what an upscale looks like to
a PNG encoder), ``--mp`` megapixels. Each encoder runs in its own fresh process (its peak RSS is its own),
alternating, ``--repeat`` times.

Run:  python bench/bench_png.py --data ../shared/data [--mp 48] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

CHILD = r"""
import io, json, re, sys, time
import numpy as np
from jdsr_cli.io import encoders, png_encoder
samples = np.load(sys.argv[2])
def hwm():
    return int(re.search(r"VmHWM:\s+(\d+)", open("/proc/self/status").read()).group(1)) * 1024
before = hwm()
buf = io.BytesIO()
start = time.perf_counter()
if sys.argv[1] == "pillow":
    encoders.encode_pillow(buf, samples, "png", icc=None, exif=None, quality=None, lossless=False)
else:
    png_encoder.encode_png(buf, samples, icc=None, exif=None)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "bytes": len(buf.getvalue()), "peak_growth": hwm() - before}))
"""


def mosaic(data: Path, megapixels: float) -> np.ndarray:
    """Set14 photos enlarged ×4 (MATLAB bicubic), tiled into a roughly 4:3 RGB image of ``megapixels``."""
    import torch
    from PIL import Image

    from jdsr_cli.ops.resize import imresize

    tiles = []
    for path in sorted((data / "benchmark" / "Set14" / "HR").glob("*.png")):
        rgb = np.asarray(Image.open(path).convert("RGB"))
        big = imresize(torch.from_numpy(rgb.transpose(2, 0, 1).copy()), scale=4.0, quantize=True)
        tiles.append(big.numpy().transpose(1, 2, 0).astype(np.uint8))
    width = int((megapixels * 1e6 * 4 / 3) ** 0.5)
    height = int(megapixels * 1e6 / width)
    out = np.empty((height, width, 3), np.uint8)
    y = k = 0
    while y < height:
        x, row_height = 0, 0
        while x < width:
            tile = tiles[k % len(tiles)][: height - y, : width - x]
            out[y : y + tile.shape[0], x : x + tile.shape[1]] = tile
            x, row_height, k = x + tile.shape[1], max(row_height, tile.shape[0]), k + 1
        y += row_height
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="the shared data folder (benchmark/Set14/HR)")
    parser.add_argument("--mp", type=float, default=48.0, help="megapixels of the test image")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--scratch", type=Path, default=Path("runs/bench_png"), help="where the samples are kept")
    args = parser.parse_args()
    args.scratch.mkdir(parents=True, exist_ok=True)
    samples = args.scratch / "samples.npy"
    np.save(samples, mosaic(args.data, args.mp))
    results: dict[str, list[dict[str, float]]] = {"pillow": [], "ours": []}
    for _ in range(args.repeat):
        for name in results:
            out = subprocess.run([sys.executable, "-c", CHILD, name, str(samples)], capture_output=True, text=True,
                                 check=True)
            results[name].append(json.loads(out.stdout))
    shape = np.load(samples, mmap_mode="r").shape
    print(f"{shape[1]}x{shape[0]} RGB ({shape[0] * shape[1] / 1e6:.0f} MP, {np.prod(shape) / 2**20:.0f} MiB of samples)")
    for name, runs in results.items():
        secs = ", ".join(f"{r['seconds']:.2f}" for r in runs)
        print(f"{name:7s} {secs} s; {runs[0]['bytes'] / 1e6:.1f} MB; peak growth "
              f"{max(r['peak_growth'] for r in runs) / 2**20:.0f} MiB")
    ratio = min(r["seconds"] for r in results["ours"]) / min(r["seconds"] for r in results["pillow"])
    size = results["ours"][0]["bytes"] / results["pillow"][0]["bytes"]
    print(f"ours/pillow: time {ratio:.2f}x, bytes {size:.3f}x")


if __name__ == "__main__":
    main()
