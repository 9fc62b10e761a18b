"""Render docs/images/photo-comparison.png: one real-world-like JPEG upscaled by bicubic, a clean model and a
faithful photo model, as labelled crops side by side (issue 17's README picture).

The input is an HR image of the training data's sources (BSD200, never the benchmark sets) shrunk by the
realistic chain (`jdsr downscale --method realistic`, fixed seed): blur, noise and real JPEG, as phone photos
and web images are. Nothing is downloaded.

Run: python scripts/make_photo_comparison.py [--image ../shared/data/train/BSD200/<name>.png] [--scale 4]
     [--clean imdn-x4] [--photo photo-faithful-x4] [--seed 0] [--out docs/images/photo-comparison.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parents[1]
CROP = 96  # LR pixels of the shown region


def upscaled(model: str, lr: np.ndarray) -> np.ndarray:
    from jdsr_cli.checkpoints.resolve import resolve_model
    from jdsr_cli.commands.upscale import create_upscaler
    from jdsr_cli.io.quantize import to_uint8

    upscaler = create_upscaler(resolve_model(model, scale=None), device="cpu", precision="fp32", tile=0)
    return to_uint8(upscaler.upscale(lr.astype(np.float32) / 255.0).pixels)


def bicubic(lr: np.ndarray, scale: int) -> np.ndarray:
    import torch

    from jdsr_cli.io.quantize import to_uint8
    from jdsr_cli.ops.resize import resize_float

    chw = torch.from_numpy(np.ascontiguousarray(lr.transpose(2, 0, 1)).astype(np.float32) / 255.0)
    return to_uint8(resize_float(chw, size=(lr.shape[0] * scale, lr.shape[1] * scale)).numpy().transpose(1, 2, 0))


def labelled(panels: list[tuple[str, np.ndarray]]) -> Image.Image:
    height, width = panels[0][1].shape[:2]
    bar = 28
    sheet = Image.new("RGB", (width * len(panels) + 8 * (len(panels) - 1), height + bar), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=18)
    for i, (label, pixels) in enumerate(panels):
        x = i * (width + 8)
        sheet.paste(Image.fromarray(pixels), (x, bar))
        draw.text((x + 4, 4), label, fill=(20, 20, 20), font=font)
    return sheet


def main() -> None:
    from jdsr_cli.commands.downscale import RealisticDownscaler
    from jdsr_cli.io.image import read_image
    from jdsr_cli.io.quantize import to_uint8
    from jdsr_cli.ops.resize import modcrop

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default_image = ROOT.parent / "shared" / "data" / "train" / "BSD200" / "100075.png"
    parser.add_argument("--image", type=Path, default=default_image)
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--clean", default="imdn-x{scale}")
    parser.add_argument("--photo", default="photo-faithful-x{scale}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "photo-comparison.png")
    args = parser.parse_args()
    s = args.scale
    hr = modcrop(to_uint8(read_image(args.image).color), s)
    lr = to_uint8(RealisticDownscaler(args.seed).resize(hr.astype(np.float32) / 255.0, hr.shape[1] // s,
                                                        hr.shape[0] // s, 8))
    h, w = min(CROP, lr.shape[0]), min(CROP, lr.shape[1])
    y, x = (lr.shape[0] - h) // 2, (lr.shape[1] - w) // 2
    region = (slice(y * s, (y + h) * s), slice(x * s, (x + w) * s))
    panels = [("input (nearest)", np.repeat(np.repeat(lr, s, 0), s, 1)[region]),
              ("bicubic", bicubic(lr, s)[region]),
              (args.clean.format(scale=s), upscaled(args.clean.format(scale=s), lr)[region]),
              (args.photo.format(scale=s), upscaled(args.photo.format(scale=s), lr)[region])]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    labelled(panels).save(args.out, optimize=True)
    print(f"{args.out}: {args.image.name}, realistic LR seed {args.seed}, ×{s}, {w}×{h} LR crop")


if __name__ == "__main__":
    main()
