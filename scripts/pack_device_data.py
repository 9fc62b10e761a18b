"""Copy the training images (and Set5) into a repo-local folder small enough to travel to a rented GPU machine.

The device tool sends the working tree (≤ 64 MiB) but not ../shared/data; T91 + BSD200 as PNG are 61 MB. Lossless
WebP keeps every pixel (checked here, image by image) at about two thirds of the size. The folder must be ignored
by git (.git/info/exclude) and named in the device call's ``carry``.

    python scripts/pack_device_data.py ../shared/data .devdata
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
from PIL import Image


def pack_lossless(source: Path, target: Path) -> int:
    """Write ``source`` as lossless WebP at ``target`` and prove the round trip; returns the bytes written."""
    with Image.open(source) as image:
        image.load()
        pixels = np.asarray(image)
        image.save(target, "WEBP", lossless=True, quality=75, method=4)
    with Image.open(target) as back:
        if back.mode != image.mode or not np.array_equal(np.asarray(back), pixels):
            raise SystemExit(f"{source}: lossless WebP round trip changed the pixels")
    return target.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="../shared/data")
    parser.add_argument("out", type=Path, help="repo-local folder, e.g. .devdata")
    args = parser.parse_args()
    total = 0
    for source in sorted((args.data / "train").rglob("*.png")):
        target = args.out / "train" / source.relative_to(args.data / "train").with_suffix(".webp")
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists() or target.stat().st_size == 0:
            pack_lossless(source, target)
        total += target.stat().st_size
    set5 = args.out / "benchmark" / "Set5"
    if not set5.exists():
        shutil.copytree(args.data / "benchmark" / "Set5", set5)
    print(f"train: {total / 2**20:.1f} MiB of lossless WebP in {args.out / 'train'}")


if __name__ == "__main__":
    main()
