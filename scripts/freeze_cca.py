"""Convert an IMDN checkpoint to static (frozen) contrast-aware channel attention (issue 29 §2).

IMDN's CCA layers scale each channel by sigmoid(conv_du(std + mean)), the std and mean taken over the whole input;
in a tile that is the tile, so `jdsr upscale --tile N` differs from `--tile 0`. This script runs the model over
training images as it was trained (MATLAB-bicubic LR for the clean models; for a photo model the realistic chain of
its own training config, `ops.degrade`, clean pairs included at its clean_prob), takes each CCA layer's input
statistic (std + mean per channel) of every image, averages them over the images, and writes a normal jdsr
checkpoint folder built with ``cca="static"`` whose ``IMDBk.cca.stat`` buffers hold those averages. Every other
tensor is the source's, unchanged: the converted model is purely local (tile-exact), not yet fine-tuned.

    python scripts/freeze_cca.py imdn-x4 -o runs/static/imdn-x4
    python scripts/freeze_cca.py photo-x2 -o runs/static/photo-x2 --images 128
    python scripts/freeze_cca.py runs/imdn-x2/best -o runs/static/imdn-x2 --patch 48   (per training patch)

By default the statistic of an image is that of the whole image (its LR); ``--patch P`` takes it over one random
P×P LR crop per image instead (what training patches saw). The images are ``--images`` of the ``--data`` folder's,
spread evenly over its sorted list (all of them with 0). The written config.json records the conversion as a
training stage of 0 steps (method ``freeze-cca``) with the source as its ``init_from``, so the lineage and the
source's recipe stay readable (`jdsr models info`), and under ``freeze_cca`` the settings and the images used.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from jdsr_cli.archs import REGISTRY  # noqa: E402
from jdsr_cli.archs.imdn import IMDN, contrast_statistic  # noqa: E402
from jdsr_cli.archs.registry import ArchConfig  # noqa: E402
from jdsr_cli.checkpoints.lineage import init_record  # noqa: E402
from jdsr_cli.checkpoints.load import LoadedModel  # noqa: E402
from jdsr_cli.checkpoints.resolve import resolve_model  # noqa: E402
from jdsr_cli.checkpoints.save import save_checkpoint  # noqa: E402


def default_data() -> Path:
    """The shared training folder: $JDSR_DATA/train, else ../shared/data/train beside the repository."""
    return Path(os.environ.get("JDSR_DATA", ROOT.parent / "shared" / "data")) / "train"


def training_degradation(loaded: LoadedModel) -> Any:
    """The realistic chain's settings the model was trained with (its last stage's ``[degradation]``), or None."""
    from jdsr_cli.ops.degrade import Degradation

    config = ((loaded.meta.get("training") or {}).get("config") or {})
    table = dict(config.get("degradation") or {})
    if table.get("mode", "bicubic") != "realistic":
        return None
    return Degradation.from_table({k: v for k, v in table.items() if k != "mode"})


def pick_images(data: Path, count: int) -> list[Path]:
    """``count`` images spread evenly over the folder's sorted images (every one with 0 or more than there are)."""
    from jdsr_cli.training.data import find_images

    paths = find_images(data)
    if not paths:
        raise SystemExit(f"{data}: no images")
    if count <= 0 or count >= len(paths):
        return paths
    return [paths[round(i * (len(paths) - 1) / (count - 1))] if count > 1 else paths[0] for i in range(count)]


def lr_of(path: Path, scale: int, index: int, seed: int, degradation: Any) -> np.ndarray:
    """Image ``index``'s LR as the model saw it in training: MATLAB bicubic, or the realistic chain (or, at its
    clean_prob, the clean pair) drawn from ``(seed, index)``."""
    from jdsr_cli.io.image import read_image
    from jdsr_cli.io.quantize import to_uint8
    from jdsr_cli.ops.degrade import degrade
    from jdsr_cli.training.data import make_pair

    rgb = read_image(path).color
    rgb = np.repeat(rgb, 3, axis=2) if rgb.shape[2] == 1 else rgb
    pair = make_pair(to_uint8(rgb), scale)
    if degradation is None:
        return pair.lr
    rng = np.random.default_rng([seed, index])
    if degradation.clean_prob > 0 and rng.random() < degradation.clean_prob:
        return pair.lr
    return degrade(pair.hr.astype(np.float32) / np.float32(255.0), scale, rng, degradation)


@torch.inference_mode()
def measure_statistics(model: IMDN, images: list[np.ndarray], patch: int, seed: int) -> list[torch.Tensor]:
    """Per CCA layer, the mean over ``images`` of its input's per-image std + mean (1×C×1×1, float64)."""
    layers = [block.cca for block in model.blocks()]
    sums: list[torch.Tensor | None] = [None] * len(layers)

    def hook(i: int):  # type: ignore[no-untyped-def]
        def record(_module, inputs):  # type: ignore[no-untyped-def]
            stat = contrast_statistic(inputs[0].double())
            sums[i] = stat if sums[i] is None else sums[i] + stat
        return record

    handles = [layer.register_forward_pre_hook(hook(i)) for i, layer in enumerate(layers)]
    try:
        rng = np.random.default_rng([seed, 2**30])
        for lr in images:
            if patch > 0:
                y = int(rng.integers(max(1, lr.shape[0] - patch + 1)))
                x = int(rng.integers(max(1, lr.shape[1] - patch + 1)))
                lr = lr[y : y + patch, x : x + patch]
            model(torch.from_numpy(np.ascontiguousarray(lr)).permute(2, 0, 1)[None].float().div(255))
    finally:
        for handle in handles:
            handle.remove()
    return [s / len(images) for s in sums]  # type: ignore[operator]


def static_model(loaded: LoadedModel, statistics: list[torch.Tensor]) -> tuple[IMDN, ArchConfig]:
    """The source's tensors in a ``cca="static"`` IMDN whose stat buffers hold ``statistics``."""
    config = ArchConfig("imdn", loaded.config.scale, {**dict(loaded.config.kwargs), "cca": "static"})
    model = REGISTRY.build(config)
    assert isinstance(model, IMDN)
    missing, unexpected = model.load_state_dict(loaded.model.state_dict(), strict=False)
    if unexpected or any(not key.endswith(".cca.stat") for key in missing):
        raise SystemExit(f"{loaded.name}: its tensors do not fit a static IMDN ({missing[:3]}, {unexpected[:3]})")
    with torch.no_grad():
        for block, stat in zip(model.blocks(), statistics, strict=True):
            block.cca.stat.copy_(stat.float())
    return model.eval(), config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="an IMDN checkpoint: a bundled name, a folder or a file")
    parser.add_argument("-o", "--out", required=True, type=Path, help="the checkpoint folder to write")
    parser.add_argument("--data", type=Path, default=None, help="HR training images (default: ../shared/data/train)")
    parser.add_argument("--images", type=int, default=64, help="images to average over (0: all; default 64)")
    parser.add_argument("--patch", type=int, default=0, help="LR patch side per image (default 0: the whole image)")
    parser.add_argument("--degradation", choices=("auto", "bicubic", "realistic"), default="auto",
                        help="LR of the images: auto = what the model was trained on (default)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the degradation and patch draws")
    parser.add_argument("--name", default=None, help="the checkpoint's name (default: MODEL-frozen-cca)")
    args = parser.parse_args(argv)

    started = time.monotonic()
    loaded = resolve_model(args.model, scale=None)
    if loaded.config.arch != "imdn":
        raise SystemExit(f"{loaded.name}: a {loaded.config.arch} model, not IMDN")
    if dict(loaded.config.kwargs).get("cca", "global") == "static":
        raise SystemExit(f"{loaded.name}: its channel attention is static already")
    scale = loaded.config.scale
    if args.degradation == "auto":
        degradation = training_degradation(loaded)
    elif args.degradation == "realistic":
        from jdsr_cli.ops.degrade import Degradation

        degradation = training_degradation(loaded) or Degradation()
    else:
        degradation = None
    data = (args.data or default_data()).resolve()
    paths = pick_images(data, args.images)
    images = [lr_of(path, scale, i, args.seed, degradation) for i, path in enumerate(paths)]
    model = loaded.model.float().eval()
    statistics = measure_statistics(model, images, args.patch, args.seed)
    converted, config = static_model(loaded, statistics)

    settings = {"data": str(data), "images": len(paths), "patch": args.patch, "seed": args.seed,
                "degradation": "realistic" if degradation is not None else "bicubic",
                **({"clean_prob": degradation.clean_prob} if degradation is not None else {}),
                "statistic": "mean over images of each CCA input's per-image std + mean",
                "first_images": [p.name for p in paths[:3]]}
    from jdsr_cli.training.recipe import command_line, hardware

    training = {"method": "freeze-cca", "step": 0, "train_seconds": round(time.monotonic() - started),
                "hardware": hardware(torch.device("cpu")), "command": command_line(), "resumed_with": [],
                "init_from": [init_record(loaded)], "freeze_cca": settings}
    # the source's own settings stay in its init_from record; a photo model's LR chain is named here too (what
    # `jdsr models list` reads to call it a photo model)
    source_degradation = ((loaded.meta.get("training") or {}).get("config") or {}).get("degradation")
    if degradation is not None and source_degradation:
        training["config"] = {"degradation": source_degradation}
    out = save_checkpoint(args.out, converted, config, name=args.name or f"{loaded.name}-frozen-cca",
                          training=training)
    for i, stat in enumerate(statistics):
        values = stat.flatten()
        print(f"IMDB{i + 1}: stat mean {float(values.mean()):.4f}, "
              f"range {float(values.min()):.4f}..{float(values.max()):.4f}")
    print(f"wrote {out} ({len(paths)} images of {data}, {settings['degradation']} LR, "
          f"{'whole images' if args.patch <= 0 else f'{args.patch} px patches'}) in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
