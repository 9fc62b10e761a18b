"""Render examples/demo.png: a synthetic scene (text, lines, circles, gradients) shrunk ×4 with the
MATLAB-compatible bicubic, so `jdsr upscale examples/demo.png` has something license-free to sharpen.

Run: python scripts/make_demo_image.py   (deterministic; the committed file is its output)
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from jdsr_cli.ops.resize import matlab_downscale_uint8

W, H, SCALE = 960, 640, 4


def render() -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    sky = np.stack([90 + 80 * yy / H, 140 + 60 * yy / H, 220 - 40 * yy / H], axis=2)
    image = Image.fromarray(sky.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    draw.ellipse((680, 60, 860, 240), fill=(255, 214, 90), outline=(200, 120, 30), width=6)
    for i in range(18):  # a fan of thin lines: aliasing and edge sharpness
        angle = math.pi * i / 36
        draw.line((80, 600, 80 + 420 * math.cos(angle), 600 - 420 * math.sin(angle)), fill=(30, 30, 60), width=3)
    for r in range(10, 130, 12):  # concentric rings
        draw.ellipse((600 - r, 460 - r, 600 + r, 460 + r), outline=(160, 30, 40), width=4)
    for k in range(12):  # stripes of decreasing period
        x0 = 760 + k * 16
        draw.rectangle((x0, 330, x0 + 8 - k // 3, 620), fill=(20, 90, 40))
    for size, y, text in ((64, 20, "jdsr"), (40, 110, "super-resolution"), (26, 170, "sharp edges, fine text"),
                          (18, 215, "The quick brown fox jumps over the lazy dog 0123456789")):
        font = ImageFont.load_default(size=size)
        draw.text((40, y), text, fill=(15, 15, 25), font=font)
    checker = ((xx // 12 + yy // 12) % 2).astype(bool)
    pixels = np.asarray(image).copy()
    box = (slice(300, 420), slice(360, 520))
    pixels[box][checker[box]] = (240, 240, 240)
    return pixels


def main() -> None:
    hr = render()
    lr = matlab_downscale_uint8(hr, SCALE)
    out = Path(__file__).resolve().parents[1] / "examples" / "demo.png"
    Image.fromarray(lr).save(out, optimize=True)
    print(f"wrote {out} ({lr.shape[1]}x{lr.shape[0]})")


if __name__ == "__main__":
    main()
