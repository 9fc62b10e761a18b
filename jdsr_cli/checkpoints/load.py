"""Loading checkpoints: verify the weights against their recipe, rebuild the network, load it strictly.

Any failure is a ModelLoadError naming the file and the reason; the recipe is found by
``checkpoints.recipe.find_recipe``, the same rule ``jdsr models inspect`` reports with.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from jdsr_cli.archs.registry import ArchConfig
from jdsr_cli.checkpoints.digest import sha256_file
from jdsr_cli.checkpoints.format import FORMAT_NAME, FORMAT_VERSION, default_name, read_config_json
from jdsr_cli.checkpoints.recipe import (
    DETECTED,
    default_registry,
    find_recipe,
    locate_checkpoint_files,
    matching_scales,
    mismatch_summary,
    read_weights,
)
from jdsr_cli.errors import JdsrError, ModelLoadError, one_line

if TYPE_CHECKING:
    from jdsr_cli.archs.base import SRNet
    from jdsr_cli.archs.registry import ArchRegistry
    from jdsr_cli.checkpoints.manifest import ManifestEntry


@dataclass
class LoadedModel:
    """A rebuilt network (eval mode) with the recipe and the metadata it came with.

    ``meta`` is the full ``config.json`` when there was one; otherwise a synthesized dict with the same
    core keys plus ``"config_source"`` (``safetensors-metadata`` or ``detected``). ``source`` is the file,
    folder or ``hf://`` reference it was loaded from; ``name`` a display name (manifest name, config
    name, or the folder / file stem); ``entry`` the manifest entry it was loaded through, if any.
    """

    model: SRNet
    config: ArchConfig
    meta: dict[str, Any]
    source: str
    name: str = ""
    entry: ManifestEntry | None = None

    @property
    def model_scale(self) -> int:
        """The scale the network was built for (the caller compares it with what the user asked)."""
        return self.config.scale


def load_checkpoint(
    path: str | os.PathLike[str],
    *,
    registry: ArchRegistry | None = None,
    map_location: str | torch.device = "cpu",
    scale_hint: int | None = None,
) -> LoadedModel:
    """Load a checkpoint folder, its config.json, a ``.safetensors`` file or a legacy ``.pth``/``.pt``.

    Paths are not resolved through symlinks, so a Hugging Face cache snapshot's ``model.safetensors``
    finds its sibling ``config.json``.

    ``scale_hint`` only matters when the recipe is *detected* and the state dict fits several scales
    (FSRCNN, PAN x2/x3: weights whose shapes do not depend on the scale): the hint picks among those
    (``meta["scale_candidates"]`` lists them). It never overrides a config.json or a certain detection.
    """
    weights, config_path = locate_checkpoint_files(path)
    return load_checkpoint_files(
        weights, config_path, registry=registry, map_location=map_location, source=str(path), scale_hint=scale_hint
    )


def load_checkpoint_files(
    weights: str | os.PathLike[str],
    config_path: str | os.PathLike[str] | None,
    *,
    registry: ArchRegistry | None = None,
    map_location: str | torch.device = "cpu",
    source: str | None = None,
    scale_hint: int | None = None,
) -> LoadedModel:
    """Load explicit files (the Hub fetches the weights and config separately)."""
    registry = default_registry(registry)
    weights = Path(weights)
    source = source or str(weights)
    digest = sha256_file(weights) if weights.is_file() else ""
    meta = read_config_json(config_path) if config_path is not None else None
    if meta is not None:
        _check_sha256(weights, meta, digest, Path(config_path or ""))
    recipe = find_recipe(registry, read_weights(weights), meta)
    config = recipe.config
    if meta is None:
        meta = _synthesized_meta(weights, config, digest, recipe.source)
    if recipe.source == DETECTED:
        candidates = matching_scales(registry, config, recipe.state)
        meta["scale_candidates"] = list(candidates)
        if scale_hint is not None and scale_hint != config.scale and scale_hint in candidates:
            config = ArchConfig(config.arch, scale_hint, dict(config.kwargs))
            meta["scale"] = scale_hint
    model = build_and_load(registry, config, recipe.state, source=source)
    if str(map_location) != "cpu":
        model = model.to(map_location)
    model.eval()
    return LoadedModel(model=model, config=config, meta=meta, source=source,
                       name=str(meta.get("name") or default_name(weights)))


def build_and_load(
    registry: ArchRegistry, config: ArchConfig, state: Mapping[str, torch.Tensor], *, source: str
) -> SRNet:
    """Build ``config`` and load ``state`` strictly; any mismatch -> ModelLoadError with a summary.

    Names and shapes are compared on the meta device first (no memory): a config.json or header can declare
    any width, and only a network the weights fill is built for real, so its size is bounded by the file's.
    """
    try:
        with torch.device("meta"):
            expected = registry.build(config).state_dict()
    except (JdsrError, TypeError, ValueError, RuntimeError) as error:  # e.g. a negative width
        raise ModelLoadError(f"{source}: cannot build {_describe(config)}: {one_line(error)}") from error
    problems = mismatch_summary(expected, state)
    if problems:
        raise ModelLoadError(f"{source}: the weights do not fit {_describe(config)}: {problems}")
    try:
        model = registry.build(config)
    except (JdsrError, TypeError, ValueError, RuntimeError) as error:
        raise ModelLoadError(f"{source}: cannot build {_describe(config)}: {one_line(error)}") from error
    try:
        model.load_state_dict(dict(state), strict=True)
    except RuntimeError as error:  # e.g. dtype that cannot be copied
        raise ModelLoadError(f"{source}: cannot load the weights: {one_line(error)}") from error
    return model


def _check_sha256(weights: Path, meta: Mapping[str, Any], digest: str, config_path: Path) -> None:
    """Refuse weights that are not the ones config.json describes (corrupt, modified or mixed up)."""
    expected = meta.get("weights_sha256")
    if expected and str(expected).lower() != digest:
        raise ModelLoadError(
            f"{weights}: sha256 mismatch: expected {expected} (from {config_path.name}), "
            f"actual {digest}; the file is corrupt or was modified"
        )


def _synthesized_meta(weights: Path, config: ArchConfig, digest: str, how: str) -> dict[str, Any]:
    """config.json's core keys for a file that has none; ``config_source`` says where the recipe came from."""
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "name": default_name(weights),
        **config.to_dict(),
        "weights_sha256": digest,
        "training": {},
        "metrics": {},
        "config_source": how,
    }


def _describe(config: ArchConfig) -> str:
    kwargs = ", ".join(f"{k}={v!r}" for k, v in sorted(config.kwargs.items()))
    return f"{config.arch} x{config.scale}" + (f" ({kwargs})" if kwargs else "")
