"""``jdsr models inspect``: what a checkpoint file is and whether it loads, without raising for a mismatch.

The recipe is found exactly as a load finds it (``checkpoints.recipe.find_recipe``), so inspect and
``upscale --model`` never disagree on a file; what a load would refuse (a sha256 or detection mismatch,
weights that do not fit) is reported in the returned facts instead.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from jdsr_cli.checkpoints.digest import sha256_file
from jdsr_cli.checkpoints.format import default_name, read_config_json
from jdsr_cli.checkpoints.load import build_and_load
from jdsr_cli.checkpoints.recipe import (
    DETECTED,
    Recipe,
    WeightsFile,
    default_registry,
    detect,
    expected_state,
    find_recipe,
    locate_checkpoint_files,
    matching_scales,
    mismatch_summary,
    read_weights,
)
from jdsr_cli.errors import JdsrError, ModelLoadError

if TYPE_CHECKING:
    import torch

    from jdsr_cli.archs.registry import ArchConfig, ArchRegistry


def inspect_checkpoint(path: str | os.PathLike[str], registry: ArchRegistry | None = None) -> dict[str, Any]:
    """Everything ``jdsr models inspect FILE`` prints (JSON-serialisable).

    Raises only when the file cannot be read at all; a sha256 mismatch (``sha256_ok``), a detection that
    fails or disagrees with config.json (``detect_error``, ``detected_matches_config``) and weights that do
    not fit their recipe (``load_error``) are reported.
    """
    registry = default_registry(registry)
    weights_path, config_path = locate_checkpoint_files(path)
    weights = read_weights(weights_path)
    meta = read_config_json(config_path) if config_path else None
    detected, detect_error = _detect(registry, weights)
    try:
        recipe: Recipe | None = find_recipe(registry, weights, meta)
    except ModelLoadError:  # nothing declared and nothing detected: already in detect_error
        recipe = None
    config = recipe.config if recipe else None
    digest = sha256_file(weights_path)
    expected_sha = (meta or {}).get("weights_sha256")
    info: dict[str, Any] = {
        "file": str(weights_path),
        "config_file": str(config_path) if config_path else None,
        "format": weights.kind,
        "name": (meta or {}).get("name") or default_name(weights_path),
        "arch": config.arch if config else None,
        "scale": config.scale if config else None,
        "kwargs": dict(config.kwargs) if config else None,
        "config_source": recipe.source if recipe else None,
        "detected": detected[0].to_dict() if detected else None,
        "family": registry.get(detected[0].arch).family if detected else None,
        "detected_matches_config": (
            _same_config(registry, detected[0], config)
            if detected and config and recipe and recipe.source != DETECTED
            else None
        ),
        "detect_error": detect_error,
        "scale_candidates": list(matching_scales(registry, *detected)) if detected else None,
        "sha256": digest,
        "sha256_expected": expected_sha,
        "sha256_ok": (str(expected_sha).lower() == digest) if expected_sha else None,
        "file_size": weights_path.stat().st_size,
        "tensor_count": len(weights.stored),
        "dtypes": sorted({str(t.dtype).removeprefix("torch.") for t in weights.stored.values()}),
        "tensor_elements": int(sum(t.numel() for t in weights.stored.values())),
        **_build_facts(registry, recipe, str(weights_path), meta or {}),
        "metrics": (meta or {}).get("metrics"),
        "training": (meta or {}).get("training"),
        "created": (meta or {}).get("created"),
        "jdsr_version": (meta or {}).get("jdsr_version"),
    }
    return info


def _detect(
    registry: ArchRegistry, weights: WeightsFile
) -> tuple[tuple[ArchConfig, dict[str, torch.Tensor]] | None, str | None]:
    """``((config, state), None)`` or ``(None, the reason)``."""
    try:
        return detect(registry, weights), None
    except ModelLoadError as error:
        return None, str(error)


def _build_facts(
    registry: ArchRegistry, recipe: Recipe | None, source: str, meta: dict[str, Any]
) -> dict[str, Any]:
    """What building the recipe tells: parameters, channels, precision and size support, or the load error."""
    facts: dict[str, Any] = {"params": None, "in_channels": meta.get("in_channels"),
                             "out_channels": meta.get("out_channels"), "supports_fp16": None,
                             "supports_bf16": None, "size_requirement": None, "load_error": None}
    if recipe is None:
        return facts
    try:
        spec = registry.get(recipe.config.arch)
    except JdsrError as error:
        return {**facts, "load_error": str(error)}
    facts.update(supports_fp16=spec.supports_fp16, supports_bf16=spec.supports_bf16,
                 size_requirement={"minimum": spec.size.minimum, "multiple_of": spec.size.multiple_of})
    try:
        model = build_and_load(registry, recipe.config, recipe.state, source=source)
    except ModelLoadError as error:
        return {**facts, "load_error": str(error)}
    facts.update(params=int(sum(p.numel() for p in model.parameters())),
                 in_channels=model.in_channels, out_channels=model.out_channels)
    return facts


def _same_config(registry: ArchRegistry, a: ArchConfig, b: ArchConfig) -> bool:
    """Same arch and scale, and kwargs that are equal or build the same names and shapes (all that detection
    can see: ``{}`` and the defaults written out are one model)."""
    if a.arch != b.arch or a.scale != b.scale:
        return False
    if _jsonish(a.kwargs) == _jsonish(b.kwargs):
        return True
    built_a, built_b = expected_state(registry, a), expected_state(registry, b)
    return built_a is not None and built_b is not None and not mismatch_summary(built_a, built_b)


def _jsonish(value: Any) -> Any:
    return json.loads(json.dumps(dict(value), sort_keys=True, default=str))
