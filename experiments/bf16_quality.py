"""What bf16 costs each bundled upscaler against fp32: mean PSNR-Y (crop = scale) on Set5 and Set14, one row per
model, in one process (issue 16: ``--precision auto`` may pick bf16 on a CPU only where this stays ≤ 0.02 dB).

    python experiments/bf16_quality.py                   # whole images (slow where the CPU emulates bf16: ~9× fp32)
    python experiments/bf16_quality.py --crop 48         # centre crops of at most 48 LR pixels a side

Measured on the 2-core AVX2 EPYC (bf16 emulated, 2026-11-30), whole images (``--models imdn-x2,imdn-x3,imdn-x4``):
imdn-x2 34.3307 → 34.3433 (+0.013), imdn-x3 31.0015 → 31.0019 (+0.000), imdn-x4 28.9806 → 28.9861 (+0.005) dB, recorded
as the manifest's ``bf16_delta_db``. On 48-px crops imdn-x2 lost 0.031 dB (35.502 → 35.472): crops exaggerate it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def centre(lr: np.ndarray, hr: np.ndarray, scale: int, side: int) -> tuple[np.ndarray, np.ndarray]:
    h, w = min(side, lr.shape[0]), min(side, lr.shape[1])
    y, x = (lr.shape[0] - h) // 2, (lr.shape[1] - w) // 2
    return lr[y:y + h, x:x + w], hr[y * scale:(y + h) * scale, x * scale:(x + w) * scale]


def mean_psnr(name: str, dtype: torch.dtype, data: Path, sets: list[str], crop: int | None) -> float:
    from jdsr_cli.checkpoints.resolve import resolve_model
    from jdsr_cli.commands.evaluation import benchmark_pairs, find_set
    from jdsr_cli.engine.device import Precision
    from jdsr_cli.engine.upscaler import Upscaler
    from jdsr_cli.io.quantize import to_uint8
    from jdsr_cli.ops.metrics import MetricConvention

    loaded = resolve_model(name, scale=None)
    scale = loaded.config.scale
    precision = Precision("bf16" if dtype == torch.bfloat16 else "fp32", dtype)
    upscaler = Upscaler(loaded.model, scale=scale, device=torch.device("cpu"), precision=precision, tile=0)
    convention = MetricConvention.standard(scale)
    scores = []
    for set_name in sets:
        for _, lr, hr in benchmark_pairs(find_set(data, set_name), scale):
            if crop:
                lr, hr = centre(lr, hr, scale, crop)
            scores.append(convention.psnr(to_uint8(upscaler.upscale(lr.astype(np.float32) / 255.0).pixels), hr))
    return float(np.mean(scores))


def main() -> None:
    from jdsr_cli.checkpoints.manifest import load_manifest

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=",".join(e.name for e in load_manifest().entries if e.arch != "slr-encoder"))
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--sets", default="Set5,Set14")
    parser.add_argument("--crop", type=int, default=0, help="LR centre-crop side (0: whole images)")
    args = parser.parse_args()
    rows = []
    for name in args.models.split(","):
        fp32, bf16 = (mean_psnr(name, dtype, args.data, args.sets.split(","), args.crop)
                      for dtype in (torch.float32, torch.bfloat16))
        rows.append({"model": name, "fp32": round(fp32, 4), "bf16": round(bf16, 4), "delta_db": round(bf16 - fp32, 4)})
        print(json.dumps(rows[-1]), flush=True)
    print(json.dumps({"sets": args.sets, "crop": args.crop, "rows": rows,
                      "command": "python experiments/bf16_quality.py " + " ".join(sys.argv[1:])}, indent=1))


if __name__ == "__main__":
    main()
