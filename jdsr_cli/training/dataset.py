"""Training and validation data from any folder tree of HR images.

Sample ``i`` of a run is a pure function of ``(seed, i)``: which image, where the crop sits, which of
the 8 dihedral views and, with the realistic degradation, every choice of its chain. So a resumed run draws
exactly the batches the uninterrupted run would have drawn, on any number of DataLoader workers, without
saving any sampler or worker state.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from jdsr_cli.errors import ImageReadError, UsageError
from jdsr_cli.io.image import read_image
from jdsr_cli.io.quantize import to_uint8
from jdsr_cli.ops.degrade import degrade, sharpen
from jdsr_cli.ops.resize import modcrop
from jdsr_cli.training.config import TrainConfig
from jdsr_cli.training.data import ImagePair, Skipped, dihedral, find_images, load_pairs
from jdsr_cli.training.run_folder import RunFolder

MAX_VAL_IMAGES = 10


def split_train_val(paths: list[Path], fraction: float) -> tuple[list[Path], list[Path]]:
    """A fixed split: every k-th image (in path order) is held out for validation, at most 10."""
    if len(paths) < 2:
        return paths, paths
    step = max(2, round(1 / max(fraction, 1e-6)))
    val = paths[step // 2 :: step][:MAX_VAL_IMAGES] or paths[:1]
    held = set(val)
    return [p for p in paths if p not in held], val


def load_lr_pairs(hr_paths: list[Path], hr_root: Path, lr_root: Path,
                  scale: int) -> tuple[list[ImagePair], list[Skipped]]:
    """Pair HR images with given LR files (``name.ext`` or ``namex{s}.ext`` at the same relative place)."""
    def uint8_rgb(path: Path) -> np.ndarray:
        pixels = read_image(path, strict=True).color  # damaged files are left out, named
        pixels = np.repeat(pixels, 3, axis=2) if pixels.shape[2] == 1 else pixels
        return to_uint8(pixels)

    lr_files = {p.relative_to(lr_root).with_suffix("").as_posix(): p for p in find_images(lr_root)}
    pairs: list[ImagePair] = []
    skipped: list[Skipped] = []
    for hr_path in hr_paths:
        rel = hr_path.relative_to(hr_root).with_suffix("").as_posix()
        lr_path = lr_files.get(rel) or lr_files.get(f"{rel}x{scale}")
        if lr_path is None:
            skipped.append(Skipped(hr_path, "unpaired", f"{hr_path}: no LR image in {lr_root}"))
            continue
        try:
            hr, lr = modcrop(uint8_rgb(hr_path), scale), uint8_rgb(lr_path)
        except ImageReadError as error:
            skipped.append(Skipped(hr_path, "unreadable", str(error)))
            continue
        if lr.shape[0] * scale != hr.shape[0] or lr.shape[1] * scale != hr.shape[1]:
            skipped.append(Skipped(hr_path, "unpaired",
                                   f"{lr_path}: {lr.shape[1]}x{lr.shape[0]} is not 1/{scale} of {hr_path.name}"))
            continue
        pairs.append(ImagePair(lr, hr))
    return pairs, skipped


REALISTIC_MARGIN = 10  # LR pixels of context around a patch the chain degrades (its kernels reach 10 px)
VAL_STREAM = 2**31  # the validation LR's generator: (seed, VAL_STREAM, image index), apart from the samples'


class PatchDataset(torch.utils.data.Dataset):
    """Item ``i`` = one aligned (LR, HR) patch pair drawn from an RNG seeded with ``(seed, i)``.

    With a ``degradation`` (``ops.degrade.Degradation``) the LR is made from the HR on the fly: the chain runs
    on the HR crop plus ``REALISTIC_MARGIN`` LR pixels of context (where the image has them), so no border
    padding reaches the patch; the HR target is unsharp-masked first when the settings say so."""

    def __init__(self, pairs: list[ImagePair], scale: int, lr_patch: int, seed: int,
                 degradation: Any = None) -> None:
        usable = [p for p in pairs if min(p.lr.shape[:2]) >= lr_patch]
        if not usable:
            raise UsageError(f"no training image is at least {lr_patch * scale} px on its short side")
        self.pairs = usable
        self.scale = scale
        self.lr_patch = lr_patch
        self.seed = seed
        self.degradation = degradation

    def __len__(self) -> int:  # the index space is unbounded; DataLoader only needs the sampler's range
        return 2**62

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, index])
        pair = self.pairs[int(rng.integers(len(self.pairs)))]
        p, s = self.lr_patch, self.scale
        y = int(rng.integers(pair.lr.shape[0] - p + 1))
        x = int(rng.integers(pair.lr.shape[1] - p + 1))
        view = int(rng.integers(8))
        # clean_prob draws only when set, so the samples of runs without it are what they always were
        keep_clean = self.degradation is None or (self.degradation.clean_prob > 0
                                                  and rng.random() < self.degradation.clean_prob)
        if not keep_clean:
            lr, hr = self._degraded(pair, y, x, rng)
        else:
            lr, hr = pair.lr[y : y + p, x : x + p], pair.hr[y * s : (y + p) * s, x * s : (x + p) * s]
        return _to_tensor(dihedral(lr, view)), _to_tensor(dihedral(hr, view))

    def _degraded(self, pair: ImagePair, y: int, x: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        p, s, m = self.lr_patch, self.scale, REALISTIC_MARGIN
        top, left = min(m, y), min(m, x)
        bottom, right = min(m, pair.lr.shape[0] - y - p), min(m, pair.lr.shape[1] - x - p)
        region = pair.hr[(y - top) * s : (y + p + bottom) * s, (x - left) * s : (x + p + right) * s]
        hr = region.astype(np.float32) / np.float32(255.0)
        if self.degradation.sharpen_hr:  # [recalled] Real-ESRGAN degrades the sharpened HR and learns it
            hr = sharpen(hr, self.degradation)
        lr = degrade(hr, s, rng, self.degradation)[top : top + p, left : left + p]
        return lr, to_uint8(hr[top * s : (top + p) * s, left * s : (left + p) * s])


def realistic_pairs(pairs: list[ImagePair], scale: int, seed: int, degradation: Any) -> list[ImagePair]:
    """Validation pairs whose LR is the chain's fixed, seeded degradation of each HR (image k: generator
    ``(seed, VAL_STREAM, k)``), so validation measures what the run trains for."""
    return [ImagePair(degrade(pair.hr.astype(np.float32) / np.float32(255.0), scale,
                              np.random.default_rng([seed, VAL_STREAM, k]), degradation), pair.hr)
            for k, pair in enumerate(pairs)]


def _to_tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1).float().div_(255.0)


class StepSampler(torch.utils.data.Sampler[int]):
    """Sample indices for steps ``start..steps-1``: rank ``r`` of ``world`` takes every world-th sample."""

    def __init__(self, start_step: int, steps: int, batch_size: int, rank: int = 0, world: int = 1) -> None:
        self.first = start_step * batch_size
        self.last = steps * batch_size
        self.rank, self.world = rank, world

    def __iter__(self):  # type: ignore[no-untyped-def]
        for i in range(self.first, self.last):
            yield i * self.world + self.rank

    def __len__(self) -> int:
        return self.last - self.first


def build_data(config: TrainConfig) -> tuple[list[ImagePair], list[ImagePair], list[Skipped]]:
    """Training pairs, validation pairs and the skipped files for a TrainConfig.

    A folder with nothing to train or validate on is a UsageError that sums up why in one line, raised
    before the run prints or writes anything.
    """
    root = Path(config.data)
    if not root.is_dir():
        moved = (f" (the data folder the run at {config.resume} was started with; if it moved, give its new place: "
                 f"{RunFolder(Path(config.resume)).resume_command(config, data='NEW_FOLDER')})" if config.resume else "")
        raise UsageError(f"{root}: not a folder of training images{moved}")
    paths = find_images(root)
    if not paths:
        raise UsageError(f"{root}: no images found (png, jpg, webp, bmp, tiff)")
    if config.val:
        train_paths, val_paths = paths, find_images(Path(config.val))[:MAX_VAL_IMAGES]
    else:
        train_paths, val_paths = split_train_val(paths, config.val_fraction)
    if config.lr_dir:
        train, skipped = load_lr_pairs(train_paths, root, Path(config.lr_dir), config.scale)
    else:
        train, skipped = load_pairs(train_paths, config.scale, config.patch_size)
    if config.lr_dir and not config.val:  # held-out pairs keep their own LR: validation measures what is trained
        val, val_skipped = load_lr_pairs(val_paths, root, Path(config.lr_dir), config.scale)
    else:
        val, val_skipped = load_pairs(val_paths, config.scale, 8)
    if not train:
        if config.val:
            raise UsageError(_nothing_to_train(root, config, len(paths), skipped, 0))
        held_out = set(val_paths) - set(train_paths) - {s.path for s in val_skipped}
        raise UsageError(_nothing_to_train(root, config, len(paths), skipped + val_skipped, len(held_out)))
    if not val and not config.val and len(train) >= 2:
        # every held-out image was unreadable (the split does not read files): hold out a readable one instead;
        # the same files give the same choice, so a resumed run validates on the same image
        val = [train.pop(len(train) // 2)]
    if not val:
        names = ", ".join(s.path.name for s in val_skipped)
        if config.val:
            raise UsageError(f"--val {config.val}: no readable image to validate on ({names or 'no images found'})")
        raise UsageError(f"{root}: the images held out for validation ({names}) are unreadable; "
                         "give --val a folder of readable images")
    return train, val, skipped + val_skipped


def _nothing_to_train(root: Path, config: TrainConfig, found: int, skipped: list[Skipped], held_out: int) -> str:
    """E.g. 'photos: none of the 4 images is usable for training (3 unreadable, 1 smaller than one 32 px patch)'."""
    kinds = {s.path: s.kind for s in skipped}  # an image both trained on and validated counts once
    count = {kind: sum(k == kind for k in kinds.values()) for kind in ("unreadable", "small", "unpaired")}

    def named(kind: str) -> str:  # which files, so the user knows what to fix: ': a.png, b.jpg (+2 more)'
        names = [str(p.relative_to(root)) if p.is_relative_to(root) else str(p) for p, k in kinds.items() if k == kind]
        return f": {', '.join(names[:3])}" + (f" (+{len(names) - 3} more)" if len(names) > 3 else "")

    parts = [f"{count['unreadable']} unreadable{named('unreadable')}" if count["unreadable"] else "",
             f"{count['small']} smaller than one {config.patch_size * config.scale} px patch{named('small')}"
             if count["small"] else "",
             f"{count['unpaired']} without a matching LR image in {config.lr_dir}{named('unpaired')}"
             if count["unpaired"] else "",
             f"{held_out} held out for validation" if held_out > 0 else ""]
    return f"{root}: none of the {found} images is usable for training ({'; '.join(filter(None, parts))})"
