"""``--denoise``: a network between a clean model and a photo model of the same architecture, by weights.

As Real-ESRGAN's ``-dn``: θ = lerp(θ_clean, θ_photo, s). s = 1 is the photo model and s = 0 the clean one,
exactly (``torch.lerp`` returns its ends bit for bit); in between, less denoising keeps more texture.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import TYPE_CHECKING

import torch

from jdsr_cli.checkpoints.resolve import resolve_model
from jdsr_cli.errors import UsageError

if TYPE_CHECKING:
    from jdsr_cli.checkpoints.load import LoadedModel


def check_strength(strength: float) -> None:
    """The one check of ``--denoise``'s value, made before anything else about it."""
    if not 0.0 <= strength <= 1.0:
        raise UsageError(f"--denoise {strength:g}: a strength between 0 (the clean model) and 1 (the photo model)")


def interpolate(clean: LoadedModel, photo: LoadedModel, strength: float) -> LoadedModel:
    """The photo model with its weights moved towards the clean model's by 1 − ``strength``."""
    check_strength(strength)
    if (clean.config.arch, clean.config.scale) != (photo.config.arch, photo.config.scale):
        raise UsageError(f"--denoise: {clean.name} ({clean.config.arch} ×{clean.config.scale}) and {photo.name} "
                         f"({photo.config.arch} ×{photo.config.scale}) are not the same architecture and scale")
    ends = clean.model.state_dict(), photo.model.state_dict()
    if {k: v.shape for k, v in ends[0].items()} != {k: v.shape for k, v in ends[1].items()}:
        raise UsageError(f"--denoise: {clean.name} and {photo.name} have different layer sizes")
    model = copy.deepcopy(photo.model)
    with torch.no_grad():
        model.load_state_dict({k: torch.lerp(ends[0][k], v, strength) if v.is_floating_point() else v
                               for k, v in ends[1].items()})
    name = f"{photo.name} (denoise {strength:g} from {clean.name})"
    # the photo model's file digest no longer describes these weights: say what they were made from instead
    meta = {**photo.meta, "weights_sha256": None,
            "denoise": {"strength": strength, "clean": clean.name or clean.source,
                        "clean_sha256": clean.meta.get("weights_sha256"),
                        "photo_sha256": photo.meta.get("weights_sha256")}}
    return dataclasses.replace(photo, model=model.eval(), name=name, meta=meta)


def with_denoise(loaded: LoadedModel, strength: float, clean_spec: str | None) -> LoadedModel:
    """``--denoise S`` (with ``--denoise-from M``, or the manifest's ``clean`` model of a photo model)."""
    check_strength(strength)
    if strength == 1.0 and clean_spec is None:
        return loaded

    name = loaded.name or loaded.source
    spec = clean_spec or (loaded.entry.clean if loaded.entry is not None else None)
    if spec is None:
        raise UsageError(f"--denoise: {name} has no clean counterpart to interpolate with; name one with "
                         "--denoise-from MODEL (same architecture and scale)")
    return interpolate(resolve_model(spec, scale=loaded.config.scale), loaded, strength)
