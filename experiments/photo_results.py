"""The photo models against Real-ESRGAN on what users see (issue 29 §4): docs/photo-results.md's table.

Inputs: the realistic LR of Set5/Set14/B100 (``jdsr eval --degradation realistic``'s chain, seed 0; HR known)
and real photographs never trained on (``experiments/fetch_photos.py``; the photo itself is the input, a centre
crop of ``--crop`` pixels so that the teacher's fp32 forward stays affordable on a CPU; no HR). Per model and
set: PSNR-Y/SSIM-Y to the HR (crop = scale, uint8 SR), PSNR-Y to the teacher's output (how close to its look;
same convention), NIQE of the SR (``ops.niqe``: MATLAB's pristine model, Y rounded, crop = scale; lower is
more natural). Every network runs whole (no tiles) in fp32 on the CPU. The teacher's outputs are cached as
PNG under ``--cache`` (keyed by its file's sha256), so adding a model re-runs only that model.

    python experiments/photo_results.py --data ../shared/data --photos ../photos \
        --teacher .teacher/realesrgan-x4plus.param --model bicubic --model imdn-x4 --model photo-faithful-x4 \
        --model photo-x4 --json docs/photo-results.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
TEACHER_SCALE = 4  # RealESRGAN_x4plus; a ×2 row compares with its output shrunk by 2
sys.path.insert(0, str(ROOT))

from jdsr_cli.checkpoints.resolve import resolve_model  # noqa: E402
from jdsr_cli.commands.downscale import ClassicDownscaler, RealisticDownscaler  # noqa: E402
from jdsr_cli.commands.evaluation import benchmark_pairs, bicubic_upscaler  # noqa: E402
from jdsr_cli.commands.runner import create_runner  # noqa: E402
from jdsr_cli.io.image import read_image  # noqa: E402
from jdsr_cli.io.quantize import to_uint8  # noqa: E402
from jdsr_cli.ops.metrics import MetricConvention  # noqa: E402
from jdsr_cli.training.methods.texture import grid_signal  # noqa: E402

SETS = ("Set5", "Set14", "B100")
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


def inputs(data: Path, sets: list[str], photos: Path | None, scale: int, crop: int
           ) -> Iterator[tuple[str, str, np.ndarray, np.ndarray | None]]:
    """(set, image name, LR uint8, HR uint8 or None) for every scored input."""
    chain = RealisticDownscaler(seed=0)
    for name in sets:
        for image, lr, hr in benchmark_pairs(data / "benchmark" / name, scale):
            small = chain.resize(hr.astype(np.float32) / 255.0, lr.shape[1], lr.shape[0], 8)
            yield name, image, to_uint8(small), hr
    if photos is None:
        return
    for path in sorted(p for p in photos.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES):
        pixels = to_uint8(read_image(path).pixels)
        if pixels.shape[2] == 1:
            pixels = np.repeat(pixels, 3, axis=2)
        h, w = pixels.shape[:2]
        top, left = max(0, (h - crop) // 2), max(0, (w - crop) // 2)
        yield "photos", path.stem, pixels[top : top + crop, left : left + crop, :3], None


def runner_for(spec: str, scale: int, device: str, precision: str = "fp32"):  # type: ignore[no-untyped-def]
    if spec == "bicubic":
        return bicubic_upscaler(scale, device)
    return create_runner(resolve_model(spec, scale=scale), direction="up", device=device, precision=precision, tile=0)


def upscale(runner, lr: np.ndarray) -> tuple[np.ndarray, float]:  # type: ignore[no-untyped-def]
    began = time.perf_counter()
    out = runner.upscale(lr.astype(np.float32) / 255.0).pixels
    return to_uint8(out), time.perf_counter() - began


def teacher_output(cache: Path, runner, set_name: str, image: str, lr: np.ndarray,  # type: ignore[no-untyped-def]
                   shrink: float = 1.0) -> np.ndarray:
    """The teacher's output on ``lr`` (cached), shrunk by ``shrink`` with MATLAB's 8-bit bicubic for a ×2 row (the
    ×4 teacher's look at ×2, as scripts/halve_cache.py makes the ×2 student's targets)."""
    from PIL import Image

    path = cache / set_name / f"{image}.png"
    if path.is_file():
        return np.asarray(Image.open(path).convert("RGB"))
    sr, _ = upscale(runner, lr)
    if shrink != 1.0:
        height, width = round(sr.shape[0] * shrink), round(sr.shape[1] * shrink)
        sr = to_uint8(ClassicDownscaler("bicubic").resize(sr.astype(np.float32) / 255.0, width, height, 8))
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sr).save(path)
    return sr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--sets", default=",".join(SETS), help="benchmark sets, comma-separated")
    parser.add_argument("--photos", type=Path, default=None)
    parser.add_argument("--teacher", required=True, help="RealESRGAN_x4plus as --model takes it (the ncnn .param)")
    parser.add_argument("--model", action="append", default=[], help="bicubic or what --model takes; repeat")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--crop", type=int, default=256, help="centre crop of each photo (LR pixels a side)")
    parser.add_argument("--cache", type=Path, default=ROOT / "runs" / "photo-results-cache")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (fp32 either way: TF32 is switched off)")
    parser.add_argument("--teacher-precision", default="fp32", help="fp32, or bf16 where fp32 is too slow (a CPU)")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    teacher_sha = hashlib.sha256(Path(args.teacher).with_suffix(".bin").read_bytes()).hexdigest()[:16]
    cache = args.cache / f"{Path(args.teacher).stem}-{teacher_sha}-x{args.scale}-crop{args.crop}-{args.teacher_precision}"
    convention = MetricConvention.standard(args.scale)
    teacher = runner_for(args.teacher, TEACHER_SCALE, args.device, args.teacher_precision)
    rows: dict[str, dict[str, dict[str, float]]] = {}
    data = list(inputs(args.data, [s for s in args.sets.split(",") if s], args.photos, args.scale, args.crop))
    targets = {(s, n): teacher_output(cache, teacher, s, n, lr, args.scale / TEACHER_SCALE) for s, n, lr, _ in data}
    for spec in [*args.model, args.teacher]:
        runner = teacher if spec == args.teacher else runner_for(spec, args.scale, args.device)
        per_set: dict[str, list[dict[str, float]]] = {}
        for set_name, image, lr, hr in data:
            sr, seconds = upscale(runner, lr) if spec != args.teacher else (targets[(set_name, image)], float("nan"))
            score = {"niqe": convention.niqe(sr), "grid": grid_levels(sr, args.scale), "seconds": seconds,
                     "mp": sr.shape[0] * sr.shape[1] / 1e6}
            if spec != args.teacher:
                score["psnr_teacher"] = convention.psnr(sr, targets[(set_name, image)])
            if hr is not None:
                score.update(psnr=convention.psnr(sr, hr), ssim=convention.ssim(sr, hr))
            per_set.setdefault(set_name, []).append(score)
        name = "RealESRGAN_x4plus (teacher)" if spec == args.teacher else spec
        rows[name] = {s: {k: float(np.mean([x[k] for x in v if k in x])) for k in v[0]} | {"images": len(v)}
                      for s, v in per_set.items()}
        print(name, json.dumps(rows[name]), flush=True)
    print_table(rows, convention)
    if args.json is not None:
        what = f"{convention.psnr_label}, {convention.ssim_label}, {convention.niqe_label}; fp32, whole, {args.device}"
        args.json.write_text(json.dumps({"convention": what, "teacher": args.teacher, "teacher_sha256_16": teacher_sha,
                                         "teacher_precision": args.teacher_precision,
                                         "crop": args.crop, "rows": rows}, indent=1))


def print_table(rows: dict[str, dict[str, dict[str, float]]], convention: MetricConvention) -> None:
    sets = [s for s in (*SETS, "photos") if any(s in r for r in rows.values())]
    print(f"\n| model | {' | '.join(sets)} |")
    print(f"|---|{'---|' * len(sets)}")
    for name, per_set in rows.items():
        cells = []
        for s in sets:
            r = per_set.get(s, {})
            parts = []
            if "psnr" in r:
                parts.append(f"{r['psnr']:.2f}/{r['ssim']:.4f}")
            if "psnr_teacher" in r:
                parts.append(f"T {r['psnr_teacher']:.2f}")
            parts.append(f"N {r['niqe']:.2f}")
            if "grid" in r:
                parts.append(f"G {r['grid']:.2f}")
            cells.append(", ".join(parts))
        print(f"| {name} | {' | '.join(cells)} |")
    print(f"\n{convention.psnr_label}/{convention.ssim_label} to HR; T = {convention.psnr_label} to the teacher's "
          f"output; N = {convention.niqe_label} (lower is more natural); G = grid signal at the scale's period, 8-bit "
          "levels (texture.grid_signal; the teacher's is what natural detail gives)")


def grid_levels(sr: np.ndarray, scale: int) -> float:
    """Mean |grid signal| of the image at period ``scale`` (the upsampler's), in 8-bit levels: a periodic
    pixel-shuffle pattern raises it above the teacher's (training/methods/texture.py)."""
    image = torch.from_numpy(np.ascontiguousarray(sr)).float().permute(2, 0, 1)[None]
    return float(grid_signal(image, scale).abs().mean())


if __name__ == "__main__":
    main()
