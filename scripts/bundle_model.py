"""Bundle a `jdsr train` checkpoint into weights/ with figures measured here, and list it in the manifest.

Supervised run (an upscaler; --default makes it `jdsr upscale`'s default for its scale):

    python scripts/bundle_model.py runs/imdn-x4/best --name imdn-x4 --default

Photo model (issue 17; also measured on the fixed realistic LR of `jdsr eval --degradation realistic --seed 0`,
next to bicubic and the clean model it was fine-tuned from, and linked to it for `--denoise`):

    python scripts/bundle_model.py runs/photo-x4/best --name photo-faithful-x4 --clean imdn-x4

Sharp photo model (issue 29: distilled from RealESRGAN_x4plus; also measured against the faithful photo model of its
scale, with NIQE, since its aim is the teacher's look rather than PSNR):

    python scripts/bundle_model.py runs/photo-x4-sharp-texgrid/last --name photo-x4 --clean imdn-x4 \
        --faithful photo-faithful-x4 --default

Superior-LR run (bundles the encoder as slr-down-xS, the default of `jdsr downscale --method superior`,
and the decoder as slr-up-xS, each naming the other as its pair):

    python scripts/bundle_model.py runs/slr-x4/best --superior-lr

Every figure is measured by this script with the `jdsr eval` protocol (jdsr_cli.commands.evaluation) on
../shared/data (PSNR-Y/SSIM-Y, crop = scale); nothing is copied from the training log except the
recipe (steps, wall-clock, hardware) that config.json already records. Each upscaler's bf16 cost
(``bf16_delta_db``, Set5+Set14) is measured too.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

import torch

from jdsr_cli.checkpoints.digest import sha256_file
from jdsr_cli.checkpoints.format import CONFIG_NAME, WEIGHTS_NAME
from jdsr_cli.checkpoints.lineage import hardware_groups
from jdsr_cli.checkpoints.load import load_checkpoint
from jdsr_cli.commands.evaluation import bicubic_upscaler, evaluate_set, find_set
from jdsr_cli.engine.device import Precision
from jdsr_cli.engine.upscaler import Upscaler
from jdsr_cli.io.atomic import atomic_write_text
from jdsr_cli.ops.metrics import MetricConvention

ROOT = Path(__file__).resolve().parents[1]
SETS = ("Set5", "Set14", "B100")
#: what a sharp photo model learned from (issue 29 §3; the run's config.json has the rest)
SHARP_RECIPE = "L1 + texture term to RealESRGAN_x4plus's outputs cached by jdsr distill-cache"


def _upscaler(model: torch.nn.Module, scale: int) -> Upscaler:
    return Upscaler(model, scale=scale, device=torch.device("cpu"), precision=Precision("fp32", torch.float32), tile=0)


def measure(decoder: torch.nn.Module, scale: int, data: Path, encoder: Any = None) -> dict[str, dict[str, float]]:
    """PSNR/SSIM of the model (on bicubic LR, or on the encoder's LR) and of bicubic, per set."""
    results = {}
    for name in SETS:
        set_dir = find_set(data, name)
        ours = evaluate_set(_upscaler(decoder, scale), set_dir, lr_from=encoder)
        row = {"psnr": round(ours.psnr, 3), "ssim": round(ours.ssim, 4), "images": len(ours.images)}
        if encoder is None:
            row["bicubic_psnr"] = round(evaluate_set(bicubic_upscaler(scale), set_dir).psnr, 3)
        else:
            row["lr_psnr"] = round(ours.lr_psnr or 0.0, 3)
        results[name] = row
        print(name, row, flush=True)
    return results


def measure_realistic(model: torch.nn.Module, clean: torch.nn.Module, scale: int, data: Path,
                      seed: int = 0, faithful: torch.nn.Module | None = None) -> dict[str, Any]:
    """The photo model, the clean model and bicubic (and the faithful photo model, for a sharp one) on the same
    seeded realistic LR of each set: PSNR-Y/SSIM-Y to the HR and NIQE of each output."""
    from jdsr_cli.commands.downscale import RealisticDownscaler

    degrade = RealisticDownscaler(seed)
    results: dict[str, Any] = {"degradation": degrade.describe()}
    others = [("clean", _upscaler(clean, scale)), ("bicubic", bicubic_upscaler(scale))]
    if faithful is not None:
        others.append(("faithful", _upscaler(faithful, scale)))
    for name in SETS:
        set_dir = find_set(data, name)
        scores = {label: evaluate_set(upscaler, set_dir, lr_from=degrade, niqe=True)
                  for label, upscaler in [("model", _upscaler(model, scale)), *others]}
        results[name] = {"psnr": round(scores["model"].psnr, 3), "ssim": round(scores["model"].ssim, 4),
                         "niqe": round(scores["model"].niqe or 0.0, 3), "images": len(scores["model"].images)}
        for label, _ in others:
            results[name] |= {f"{label}_psnr": round(scores[label].psnr, 3),
                              f"{label}_niqe": round(scores[label].niqe or 0.0, 3)}
        print(f"{name} realistic", results[name], flush=True)
    return results


def measure_bf16_delta(model: torch.nn.Module, scale: int, data: Path) -> float:
    """bf16 − fp32 mean PSNR-Y over Set5+Set14 (the manifest's ``bf16_delta_db``: auto avoids bf16 for a model that
    loses more than 0.02 dB; tests/test_bundled.py re-measures it). Slow where the CPU emulates bf16 (~9× fp32)."""
    means = {}
    for precision in (Precision("fp32", torch.float32), Precision("bf16", torch.bfloat16)):
        upscaler = Upscaler(model, scale=scale, device=torch.device("cpu"), precision=precision, tile=0)
        scores = [s.psnr for name in ("Set5", "Set14") for s in evaluate_set(upscaler, find_set(data, name)).images]
        means[precision.name] = sum(scores) / len(scores)
    delta = round(means["bf16"] - means["fp32"], 3)
    print(f"bf16 - fp32 on Set5+Set14: {delta:+.3f} dB", flush=True)
    return delta


def copy_checkpoint(source: Path, name: str, loaded: Any) -> Path:
    """weights/<name>/ = the checkpoint's weights and config (never the optimizer state)."""
    target = ROOT / "weights" / name
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for file in (WEIGHTS_NAME, CONFIG_NAME):
        shutil.copy2(source / file, target / file)
    config = json.loads((target / CONFIG_NAME).read_text())
    config["name"] = name
    config.update(_deployed_weights(target, loaded))
    atomic_write_text(target / CONFIG_NAME, json.dumps(config, indent=2) + "\n")
    return target


def _deployed_weights(folder: Path, loaded: Any) -> dict[str, Any]:
    """Write a training-form checkpoint's weights in their deployed form (SPAN's folded convs: same outputs, a fifth
    of the file) into ``folder``; returns the config keys that change. Models with one form are left alone."""
    from jdsr_cli.archs import REGISTRY, ArchConfig
    from jdsr_cli.checkpoints.save import encode_checkpoint
    from jdsr_cli.engine.onnx_export import deployment_copy

    deployed = deployment_copy(loaded)
    state = deployed.state_dict()
    if state.keys() == loaded.model.state_dict().keys():
        return {}
    spec = REGISTRY.get(loaded.config.arch)
    before, after = spec.detect(loaded.model.state_dict()) or {}, spec.detect(state) or {}
    kwargs = {**loaded.config.kwargs, **{k: v for k, v in after.items() if before.get(k) != v}}  # e.g. folded
    encoded = encode_checkpoint(deployed, ArchConfig(loaded.config.arch, loaded.config.scale, kwargs), name=folder.name)
    (folder / WEIGHTS_NAME).write_bytes(encoded.weights)
    written = json.loads(encoded.config_text)
    return {"kwargs": written["kwargs"], "weights_sha256": written["weights_sha256"]}


def describe(loaded: Any, what: str, metrics: dict[str, Any], label: str) -> str:
    training = loaded.meta.get("training") or {}
    frozen = training.get("method") == "freeze-cca"  # scripts/freeze_cca.py: the source's recipe, made static
    if frozen and training.get("init_from"):
        source = training["init_from"][0].get("training") or {}
        training = {**source, "init_from": source.get("init_from", [])}
        what += " with static channel statistics (tile-exact; scripts/freeze_cca.py, not fine-tuned)"
    config = training.get("config") or {}
    command = "`jdsr train`"
    if training.get("method") == "distill":  # name the method and the teachers: they are part of the recipe
        options = config.get("method_options") or {}
        teachers = ", ".join(t.get("name", "?") for t in training.get("teachers") or [])
        kd_loss = options.get("kd_loss", options.get("loss", "?"))  # "loss": recipes of earlier versions
        command = f"`jdsr distill --kd-loss {kd_loss}` from {teachers}"
    if config.get("preset") not in (None, "default"):
        what += f" ({config['preset']} preset)"
    degradation = config.get("degradation") or {}
    if degradation.get("mode") == "realistic":
        clean = float(degradation.get("clean_prob", 0))
        what += " for real photos (realistic degradations" + (f", {clean:.0%} clean pairs)" if clean else ")")
    return f"{what}: {command}, {_stages_by_hardware(training)} on T91+BSD200; {label} Set5 {metrics['Set5']['psnr']:.2f} dB"


def _stages_by_hardware(training: dict[str, Any]) -> str:
    """'17000 steps in 3 runs (4.0 h, cpu: ...) then 4000 steps (0.1 h, cuda: ...)'."""
    parts = []
    for group in hardware_groups(training):
        runs = f" in {len(group['steps'])} runs" if len(group["steps"]) > 1 else ""
        parts.append(f"{sum(group['steps'])} steps{runs} ({group['hours']:.1f} h, {group['hardware']})")
    return " then ".join(parts)


def register(entry: dict[str, Any]) -> None:
    """Add or replace the entry; a new default for a (role, scale) clears the old one."""
    path = ROOT / "weights" / "manifest.json"
    manifest = json.loads(path.read_text())
    others = [e for e in manifest["models"] if e["name"] != entry["name"]]
    if entry.get("default_for_scale"):
        for other in others:
            if (other.get("default_for_scale") and other.get("scale") == entry["scale"]
                    and other.get("role", "upscale") == entry.get("role", "upscale")):
                other["default_for_scale"] = False
    def order(e: dict[str, Any]) -> tuple[bool, int, bool, str]:
        """Upscalers by scale, then the superior-LR pairs by scale, each downscaler before its decoder."""
        return bool(e.get("pair")), e["scale"], e.get("role", "upscale") == "upscale", e["name"]

    manifest["models"] = sorted([*others, entry], key=order)
    atomic_write_text(path, json.dumps(manifest, indent=2) + "\n")


def entry_for(name: str, folder: Path, loaded: Any, description: str, metrics: dict[str, Any], **extra: Any) -> dict:
    return {"name": name, "arch": loaded.config.arch, "scale": loaded.config.scale, "source": "bundled",
            "path": folder.name, "sha256": sha256_file(folder / WEIGHTS_NAME), "description": description,
            "metrics": metrics, **extra}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path, help="a run's best/ (or last/) folder")
    parser.add_argument("--name", help="bundled name (supervised runs)")
    parser.add_argument("--default", action="store_true", help="make it the default upscaler for its scale")
    parser.add_argument("--superior-lr", action="store_true", help="the folder holds encoder/ and decoder/")
    parser.add_argument("--clean", help="a photo model: the clean model it was fine-tuned from (--denoise's other end); "
                                        "adds realistic-LR figures")
    parser.add_argument("--faithful", help="a sharp photo model: the faithful photo model of its scale (adds its "
                                           "realistic-LR figures and NIQE beside this one's)")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    args = parser.parse_args()

    if not args.superior_lr:
        loaded = load_checkpoint(args.checkpoint)
        scale = loaded.config.scale
        label = MetricConvention.standard(scale).psnr_label
        metrics = {"convention": f"{label}, MATLAB-bicubic LR", **measure(loaded.model, scale, args.data)}
        extra: dict[str, Any] = {"bf16_delta_db": measure_bf16_delta(loaded.model, scale, args.data)}
        if args.clean:
            from jdsr_cli.checkpoints.resolve import resolve_model

            faithful = resolve_model(args.faithful, scale=scale).model if args.faithful else None
            metrics["realistic"] = measure_realistic(loaded.model, resolve_model(args.clean, scale=scale).model, scale,
                                                     args.data, faithful=faithful)
            extra["clean"] = args.clean
            if args.faithful:
                extra["faithful"] = args.faithful
        name = args.name or f"{loaded.config.arch}-x{scale}"
        folder = copy_checkpoint(args.checkpoint, name, loaded)
        what = f"{loaded.config.arch.upper()} x{scale}"
        if args.faithful:
            what += f" for real photos, sharp ({SHARP_RECIPE})"
        register(entry_for(name, folder, loaded, describe(loaded, what, metrics, label), metrics,
                           default_for_scale=args.default, **extra))
        return

    from jdsr_cli.commands.downscale import create_downscaler

    encoder = load_checkpoint(args.checkpoint / "encoder")
    decoder = load_checkpoint(args.checkpoint / "decoder")
    scale = encoder.config.scale
    down, up = f"slr-down-x{scale}", f"slr-up-x{scale}"
    label = MetricConvention.standard(scale).psnr_label
    encoder.name = down
    metrics = {"convention": f"{label}, round trip {up}({down}(HR)) vs HR; lr_psnr: {down}(HR) vs MATLAB-bicubic LR",
               **measure(decoder.model, scale, args.data, create_downscaler("superior", loaded=encoder, tile=0,
                                                                             device="cpu"))}
    down_folder = copy_checkpoint(args.checkpoint / "encoder", down, encoder)
    up_folder = copy_checkpoint(args.checkpoint / "decoder", up, decoder)
    register(entry_for(down, down_folder, encoder, describe(encoder, f"superior-LR encoder x{scale} (round trip with "
                                                            f"{up})", metrics, label), metrics,
                       role="downscale", pair=up, default_for_scale=True))
    register(entry_for(up, up_folder, decoder, describe(decoder, f"superior-LR decoder x{scale} (input: {down} "
                                                        "output, not bicubic LR)", metrics, label), metrics, pair=down))


if __name__ == "__main__":
    main()
