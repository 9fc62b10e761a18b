"""A teacher's targets, made once and stored as patch pairs: distillation from a costly teacher anywhere.

Real-ESRGAN's RRDBNet costs ~25× the student per pixel; run online, it is most of every distillation step on a
CPU. ``jdsr distill-cache`` runs it once per patch where it is fast (a GPU, a CPU with AMX bf16) and writes
``CACHE/lr/<i>.png`` (the degraded LR patch the student will see) and ``CACHE/target/<i>.png`` (the teacher's
output on it) plus ``CACHE/recipe.json``. The student then trains from the pairs with the normal trainer,
anywhere and resumable (``jdsr train CACHE/target --lr-dir CACHE/lr``): L1 to the teacher's output on the same
LR, the output distillation of ``jdsr distill --w-hr 0`` without the teacher's cost per step.

Pair ``i`` is training sample ``i`` of ``jdsr train``'s own sampler (``PatchDataset``: image, place, dihedral view
and degradation drawn from ``(seed, i)``), so a cache is the same whether made in one go or over several stops:
each pair is written atomically (LR first, target last) and a re-run makes only the missing ones. The teacher sees
the LR patch alone (no context beyond it), as the student does in training.

With ``as_is`` (``--degradation none``) the LR patches are cut from the images as they are, not made from an HR:
real photos need no HR, since the teacher's output is the only target. A teacher trained on degraded inputs draws
its texture on such clean-ish photos, where on the heavily degraded patches of the realistic chain it mostly
smooths (docs/photo-results.md), so this is the cache for a student meant for photos as users have them.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from jdsr_cli.archs import REGISTRY
from jdsr_cli.engine.device import resolve_device, resolve_precision
from jdsr_cli.errors import UsageError
from jdsr_cli.io.atomic import atomic_write_bytes, atomic_write_text
from jdsr_cli.training.data import find_images, load_pairs
from jdsr_cli.training.dataset import PatchDataset
from jdsr_cli.training.methods.distill.teachers import load_teacher

RECIPE_NAME = "recipe.json"
FORMAT = "jdsr-distill-cache"


@dataclass(frozen=True)
class CacheRecipe:
    """What makes the pairs: a cache only grows under the recipe it was started with."""

    teacher: str
    teacher_sha256: str
    scale: int
    patch_size: int
    seed: int
    degradation: dict[str, Any] | None  # the realistic chain's settings, or None for MATLAB bicubic
    data: str
    images: int
    format: str = FORMAT
    as_is: bool = False  # LR patches cut from the images as they are (no HR); absent from older recipes

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True) + "\n"


def pair_name(index: int) -> str:
    return f"{index:07d}.png"


def check_recipe(folder: Path, recipe: CacheRecipe) -> None:
    """Refuse to add pairs of another recipe to an existing cache (one line naming what differs)."""
    path = folder / RECIPE_NAME
    if not path.is_file():
        if folder.exists() and any(folder.iterdir()):
            raise UsageError(f"-o {folder}: exists and is not a distill cache (no {RECIPE_NAME}); nothing was written")
        return
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise UsageError(f"{path}: unreadable ({error})") from None
    ours = json.loads(recipe.to_json())
    # a field added later (as_is) is absent from an older recipe, which meant its default
    defaults = {f.name: f.default for f in fields(CacheRecipe) if f.default is not MISSING}
    differ = sorted(k for k in ours if stored.get(k, defaults.get(k)) != ours[k] and k != "data")
    if differ:
        raise UsageError(f"{folder}: a cache of another recipe ({', '.join(differ)} differ); use a new -o folder")


def missing_indices(folder: Path, pairs: int) -> list[int]:
    """The pair indices whose target is not written yet (the target is written last)."""
    return [i for i in range(pairs) if not (folder / "target" / pair_name(i)).is_file()]


def write_pair(folder: Path, index: int, lr: np.ndarray, target: np.ndarray) -> None:
    for sub, pixels in (("lr", lr), ("target", target)):
        atomic_write_bytes(folder / sub / pair_name(index), _png(pixels))


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _uint8(batch: torch.Tensor) -> np.ndarray:
    return (batch.float().clamp(0, 1).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy())


def fill_cache(folder: Path, indices: list[int], sample: Callable[[int], torch.Tensor],
               teacher: Callable[[torch.Tensor], torch.Tensor], batch_size: int,
               on_batch: Callable[[int], None] | None = None) -> int:
    """Make the pairs ``indices`` in batches: LR from ``sample(i)`` (C×h×w in [0, 1]), target = ``teacher``."""
    (folder / "lr").mkdir(parents=True, exist_ok=True)
    (folder / "target").mkdir(parents=True, exist_ok=True)
    done = 0
    for start in range(0, len(indices), batch_size):
        chunk = indices[start : start + batch_size]
        lr = torch.stack([sample(i) for i in chunk])
        with torch.no_grad():
            target = teacher(lr)
        for i, lr_pixels, target_pixels in zip(chunk, _uint8(lr), _uint8(target), strict=True):
            write_pair(folder, i, lr_pixels, target_pixels)
        done += len(chunk)
        if on_batch is not None:
            on_batch(len(chunk))
    return done


@dataclass(frozen=True)
class CacheReport:
    folder: Path
    made: int
    total: int
    seconds: float


def make_distill_cache(data: Path, teacher_spec: str, out: Path, *, scale: int, pairs: int, patch_size: int = 64,
                       seed: int = 0, degradation: Any = None, as_is: bool = False, device: str = "auto",
                       precision: str = "auto", batch_size: int = 8,
                       on_batch: Callable[[int, int], None] | None = None) -> CacheReport:
    """Add the missing pairs ``0..pairs-1`` of the cache at ``out`` (see the module docstring)."""
    if pairs < 1 or patch_size < 8 or batch_size < 1:
        raise UsageError("--pairs and --batch-size must be at least 1, --patch-size at least 8")
    if not data.is_dir():
        raise UsageError(f"{data}: not a folder of training images")
    if as_is and degradation is not None:
        raise UsageError("photos as they are take no degradation: choose one")
    loaded = load_teacher(teacher_spec, scale)
    shrink = 1 if as_is else scale  # as they are: the image is the LR
    images, _skipped = load_pairs(find_images(data), shrink, patch_size)
    if not images:
        raise UsageError(f"{data}: no readable image of at least {patch_size * shrink} px a side")
    recipe = CacheRecipe(teacher=loaded.name, teacher_sha256=str(loaded.meta.get("weights_sha256", "")), scale=scale,
                         patch_size=patch_size, seed=seed, data=str(data), images=len(images),
                         degradation=None if degradation is None else asdict(degradation), as_is=as_is)
    check_recipe(out, recipe)
    out.mkdir(parents=True, exist_ok=True)
    if not (out / RECIPE_NAME).is_file():
        atomic_write_text(out / RECIPE_NAME, recipe.to_json())
    todo = missing_indices(out, pairs)
    torch_device = resolve_device(device)
    spec = REGISTRY.get(loaded.config.arch)
    chosen = resolve_precision(precision, torch_device, supports_fp16=spec.supports_fp16,
                               supports_bf16=spec.supports_bf16)
    net = loaded.model.eval().to(torch_device)

    def teacher(lr: torch.Tensor) -> torch.Tensor:
        lr = lr.to(torch_device)
        if chosen.dtype is torch.float32:
            return net(lr)
        with torch.autocast(torch_device.type, dtype=chosen.dtype):
            return net(lr).float()

    dataset = PatchDataset(images, shrink, patch_size, seed, degradation)
    began, made = time.perf_counter(), 0

    def progress(count: int) -> None:
        nonlocal made
        made += count
        if on_batch is not None:
            on_batch(made, len(todo))

    fill_cache(out, todo, lambda i: dataset[i][0], teacher, batch_size, progress)
    return CacheReport(out, made, pairs, time.perf_counter() - began)
