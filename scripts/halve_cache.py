"""A ×2 teacher cache from a ×4 one: the same LR patches, each ×4 teacher output shrunk by 2 (MATLAB's 8-bit
bicubic, `jdsr downscale --method bicubic`'s ClassicDownscaler), so the ×2 student learns the ×4 teacher's look at
its own scale (the wheel carries no ×2 RealESRGAN_x4plus; issue 29 §3's `photo-x2`). LR files are hard-linked.

    python scripts/halve_cache.py ../cache/x4-asis ../cache/x2-asis
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
from PIL import Image

from jdsr_cli.commands.downscale import ClassicDownscaler
from jdsr_cli.io.atomic import atomic_write_text
from jdsr_cli.io.quantize import to_uint8


def halve(src: Path, dst: Path) -> int:
    """Write dst/lr (links) and dst/target (halved) for every pair of src; returns the pair count."""
    recipe = json.loads((src / "recipe.json").read_text())
    if recipe.get("scale") != 4:
        raise SystemExit(f"{src}: a ×4 cache is needed, this one is ×{recipe.get('scale')}")
    (dst / "lr").mkdir(parents=True, exist_ok=True)
    (dst / "target").mkdir(parents=True, exist_ok=True)
    names = sorted(p.name for p in (src / "target").glob("*.png"))
    bicubic = ClassicDownscaler("bicubic")
    for name in names:
        if not (dst / "lr" / name).exists():
            os.link(src / "lr" / name, dst / "lr" / name)
        target = np.asarray(Image.open(src / "target" / name).convert("RGB"), dtype=np.float32) / 255.0
        half = bicubic.resize(target, target.shape[1] // 2, target.shape[0] // 2, 8)
        Image.fromarray(to_uint8(half)).save(dst / "target" / name)
    atomic_write_text(dst / "recipe.json", json.dumps({**recipe, "scale": 2, "derived_from": str(src),
                                                       "target": "the x4 teacher's output, MATLAB bicubic 0.5"},
                                                      indent=1))
    return len(names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path)
    parser.add_argument("dst", type=Path)
    args = parser.parse_args()
    print(f"{halve(args.src, args.dst)} pairs -> {args.dst}")


if __name__ == "__main__":
    main()
