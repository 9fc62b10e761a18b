"""Train a bundled model on ../shared/data/train and write it to weights/<name>/ with its measured figures.

This is the interim recipe used before `jdsr train` exists (issue 3 replaces it); every number it writes
is measured by this script on Set5/Set14 (PSNR-Y/SSIM-Y, crop = scale, MATLAB-bicubic LR).

    python scripts/train_bundled.py --arch imdn --scale 4 --steps 3000 --batch-size 16 --patch 48
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from jdsr_cli.archs import REGISTRY
from jdsr_cli.archs.registry import ArchConfig
from jdsr_cli.checkpoints.format import save_checkpoint
from jdsr_cli.ops.metrics import MetricConvention
from jdsr_cli.training.data import PatchSampler, find_images, load_pairs
from jdsr_cli.training.supervised import fit_supervised

ROOT = Path(__file__).resolve().parents[1]


def evaluate(model: torch.nn.Module, data: Path, scale: int, sets: list[str]) -> dict[str, dict[str, float]]:
    """The `jdsr eval` protocol (jdsr_cli.evaluation) for the model and for MATLAB bicubic."""
    from jdsr_cli.engine.device import Precision
    from jdsr_cli.engine.upscaler import Upscaler
    from jdsr_cli.evaluation import bicubic_upscaler, evaluate_set, find_set

    def upscaler(net: torch.nn.Module) -> Upscaler:
        return Upscaler(net, scale=scale, device=torch.device("cpu"), precision=Precision("fp32", torch.float32), tile=0)

    results = {}
    for name in sets:
        set_dir = find_set(data, name)
        ours = evaluate_set(upscaler(model), set_dir)
        bicubic = evaluate_set(bicubic_upscaler(scale), set_dir)
        results[name] = {
            "psnr": round(ours.psnr, 3),
            "ssim": round(ours.ssim, 4),
            "bicubic_psnr": round(bicubic.psnr, 3),
            "images": len(ours.images),
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="imdn")
    parser.add_argument("--preset", default=None)
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--patch", type=int, default=48, help="LR patch side")
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--name", default=None)
    parser.add_argument("--init", type=Path, default=None, help="start from this checkpoint's weights")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    spec = REGISTRY.get(args.arch)
    kwargs = dict(spec.presets[args.preset]) if args.preset else {}
    config = ArchConfig(args.arch, args.scale, kwargs)
    model = REGISTRY.build(config)
    if args.init:
        from jdsr_cli.checkpoints.format import load_checkpoint

        source = load_checkpoint(args.init).model.state_dict()
        target = model.state_dict()
        shared = {k: v for k, v in source.items() if k in target and target[k].shape == v.shape}
        model.load_state_dict(shared, strict=False)  # the body transfers across scales; the upsampler does not
        print(f"initialised {len(shared)}/{len(target)} tensors from {args.init}", flush=True)
    pairs, skipped = load_pairs(find_images(args.data / "train"), args.scale, args.patch)
    print(f"{len(pairs)} training images ({len(skipped)} skipped)", flush=True)
    sampler = PatchSampler(pairs, args.scale, args.patch, seed=args.seed)
    start = time.time()
    fit = fit_supervised(
        model, sampler, steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
        log_every=100, log=lambda step, loss: print(f"step {step} loss {loss:.4f} {time.time() - start:.0f}s", flush=True),
    )
    metrics = evaluate(model, args.data, args.scale, ["Set5", "Set14"])
    name = args.name or f"{args.arch}-x{args.scale}"
    recipe = {
        "method": "supervised L1",
        "data": "T91 + BSD200 (290 images, ../shared/data/train), MATLAB-bicubic LR",
        "steps": args.steps,
        "batch_size": args.batch_size,
        "lr_patch": args.patch,
        "optimizer": "Adam(0.9, 0.99)",
        "lr": args.lr,
        "schedule": "cosine to 1% of lr",
        "seed": args.seed,
        "init": str(args.init) if args.init else None,
        "wall_clock_s": round(fit.seconds),
        "hardware": f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads",
        "command": "python scripts/train_bundled.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v not in (None, False) and k != "data"
        ),
    }
    convention = MetricConvention.standard(args.scale)
    folder = save_checkpoint(
        ROOT / "weights" / name, model, config, name=name, training=recipe,
        metrics={"convention": f"{convention.psnr_label} / {convention.ssim_label}, MATLAB-bicubic LR", **metrics},
    )
    register_bundled(name, config, folder, metrics, recipe, convention.psnr_label)
    print(json.dumps({"checkpoint": str(folder), "metrics": metrics, "seconds": round(fit.seconds)}, indent=2))


def register_bundled(name: str, config: ArchConfig, folder: Path, metrics: dict, recipe: dict, label: str) -> None:
    """Add or replace the model's entry in weights/manifest.json (default for its scale)."""
    from jdsr_cli.checkpoints.format import sha256_file
    from jdsr_cli.io.atomic import atomic_write_text

    manifest_path = ROOT / "weights" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    others = [e for e in manifest["models"] if e["name"] != name]
    for entry in others:
        if entry.get("scale") == config.scale:
            entry["default_for_scale"] = False
    hours = recipe["wall_clock_s"] / 3600
    entry = {
        "name": name,
        "arch": config.arch,
        "scale": config.scale,
        "source": "bundled",
        "path": folder.name,
        "sha256": sha256_file(folder / "model.safetensors"),
        "description": (
            f"{config.arch.upper()} x{config.scale}, preview: {recipe['steps']} steps on T91+BSD200 "
            f"({hours:.1f} h on {recipe['hardware']}); {label} Set5 {metrics['Set5']['psnr']:.2f} dB"
        ),
        "metrics": {"convention": f"{label}, MATLAB-bicubic LR", **metrics},
        "default_for_scale": True,
    }
    manifest["models"] = sorted([*others, entry], key=lambda e: (e["scale"], e["name"]))
    atomic_write_text(manifest_path, json.dumps(manifest, indent=2) + "\n")


if __name__ == "__main__":
    main()
