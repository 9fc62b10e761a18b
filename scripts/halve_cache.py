"""A ×2 teacher cache from a ×4 one: the same LR patches, each ×4 teacher output shrunk by 2 (MATLAB bicubic with
its antialiasing, jdsr_cli.ops.resize.imresize), so the ×2 student learns the ×4 teacher's look at its own scale
(the wheel carries no ×2 RealESRGAN_x4plus; issue 29 §3's `photo-x2`). LR files are hard-linked, not copied.

    python scripts/halve_cache.py ../cache/x4-asis ../cache/x2-asis
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from jdsr_cli.ops.resize import imresize


def halve(src: Path, dst: Path) -> int:
    """Write dst/lr (links) and dst/target (halved) for every pair of src; returns the pair count."""
    recipe = json.loads((src / "recipe.json").read_text())
    if recipe.get("scale") != 4:
        raise SystemExit(f"{src}: a ×4 cache is needed, this one is ×{recipe.get('scale')}")
    (dst / "lr").mkdir(parents=True, exist_ok=True)
    (dst / "target").mkdir(parents=True, exist_ok=True)
    names = sorted(p.name for p in (src / "target").glob("*.png"))
    for name in names:
        if not (dst / "lr" / name).exists():
            os.link(src / "lr" / name, dst / "lr" / name)
        target = torch.from_numpy(np.array(Image.open(src / "target" / name).convert("RGB"))).permute(2, 0, 1)
        half = imresize(target.double() / 255.0, scale=0.5)
        pixels = (half * 255.0).round().clamp(0, 255).byte().permute(1, 2, 0).numpy()
        Image.fromarray(pixels).save(dst / "target" / name)
    (dst / "recipe.json").write_text(json.dumps({**recipe, "scale": 2, "derived_from": str(src),
                                                 "target": "the x4 teacher's output, imresize 0.5"}, indent=1))
    return len(names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path)
    parser.add_argument("dst", type=Path)
    args = parser.parse_args()
    print(f"{halve(args.src, args.dst)} pairs -> {args.dst}")


if __name__ == "__main__":
    main()
