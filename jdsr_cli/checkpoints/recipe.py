"""Finding the recipe that rebuilds a checkpoint: one rule, shared by loading and by ``jdsr models inspect``.

The recipe (architecture, scale, build arguments) comes from, in order: ``config.json``, the safetensors
header's ``jdsr_config``, detection from tensor names and shapes. Training frameworks prefix names
(``module.``, ``model.``, ``netG.``), so every rule sees two candidate name sets: the prefix-stripped
names first, then the names as stored; a declared recipe takes the first set its model fits, detection
the first set an architecture matches. Before this rule was shared, a file could load but not inspect.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from jdsr_cli.archs.registry import ArchConfig
from jdsr_cli.checkpoints.esrgan_layout import rename_old_esrgan
from jdsr_cli.checkpoints.format import CONFIG_NAME, SAFETENSORS_CONFIG_KEY, WEIGHTS_NAME, read_safetensors_metadata
from jdsr_cli.checkpoints.legacy import (
    LEGACY_SUFFIXES,
    check_backed,
    extract_state_dict,
    load_legacy_file,
    strip_prefixes,
)
from jdsr_cli.checkpoints.swap import recover_missing
from jdsr_cli.errors import JdsrError, ModelLoadError

if TYPE_CHECKING:
    from jdsr_cli.archs.registry import ArchRegistry

CONFIG_JSON, HEADER, DETECTED, NCNN_GRAPH = "config.json", "safetensors-metadata", "detected", "ncnn-graph"
NCNN_SUFFIX = ".param"


@dataclass
class WeightsFile:
    """A weights file as read: its tensors under their stored names (legacy wrappers already unwrapped)."""

    path: Path
    kind: str  # "safetensors" | "pytorch-pickle" | "ncnn"
    stored: dict[str, torch.Tensor]
    header: dict[str, str] = field(default_factory=dict)  # safetensors metadata
    graph_config: ArchConfig | None = None  # an ncnn graph's recipe, read off the graph itself

    def candidates(self) -> list[dict[str, torch.Tensor]]:
        """The name sets a recipe may fit, in order: prefix-stripped, then as stored (one if the same), then
        an old-style ESRGAN file's names in today's layout (4x-UltraSharp and the rest of that zoo)."""
        stripped = strip_prefixes(self.stored)
        sets = [stripped] if list(stripped) == list(self.stored) else [stripped, self.stored]
        renamed = rename_old_esrgan(stripped)
        return sets + ([renamed] if renamed is not None else [])


@dataclass
class Recipe:
    """What rebuilds the network: ``config``, where it came from, and the tensors under the names it fits."""

    config: ArchConfig
    source: str  # CONFIG_JSON | HEADER | DETECTED
    state: dict[str, torch.Tensor]


def locate_checkpoint_files(path: str | os.PathLike[str]) -> tuple[Path, Path | None]:
    """``(weights file, config.json or None)`` for any accepted form of ``path``.

    A path that is missing because a save was killed between its two renames is recovered first.
    """
    p = Path(path).expanduser()
    if not p.exists():
        recover_missing(p)
    if not p.exists():
        raise ModelLoadError(f"{p}: no such file or folder")
    if p.is_dir():
        weights, config = p / WEIGHTS_NAME, p / CONFIG_NAME
        if not weights.is_file():
            found = sorted(x.name for x in p.iterdir())[:8]
            raise ModelLoadError(
                f"{p}: not a jdsr checkpoint folder (no {WEIGHTS_NAME}; contains: {', '.join(found) or 'nothing'})"
            )
        return weights, (config if config.is_file() else None)
    suffix = p.suffix.lower()
    if suffix == ".json":
        weights = p.parent / WEIGHTS_NAME
        if not weights.is_file():
            raise ModelLoadError(f"{p}: its weights {weights.name} are not next to it in {p.parent}")
        return weights, p
    if suffix == ".safetensors":
        sibling = p.parent / CONFIG_NAME
        return p, (sibling if sibling.is_file() else None)
    if suffix == NCNN_SUFFIX or (suffix == ".bin" and p.with_suffix(NCNN_SUFFIX).is_file()):
        return p.with_suffix(NCNN_SUFFIX), None  # an ncnn pair is named by its graph; the .bin sits beside it
    if suffix in LEGACY_SUFFIXES:
        return p, None
    raise ModelLoadError(
        f"{p}: unsupported file type {suffix or '(no suffix)'!r}; expected a checkpoint folder, "
        f"config.json, .safetensors, an ncnn .param or {'/'.join(LEGACY_SUFFIXES)}"
    )


def read_weights(path: Path) -> WeightsFile:
    """Read a ``.safetensors`` file, an ncnn graph or (safely, never running code) a legacy pickle."""
    if path.suffix.lower() == NCNN_SUFFIX:
        from jdsr_cli.checkpoints.ncnn_import import import_ncnn

        try:
            config, state = import_ncnn(path, default_registry(None))
        except ModelLoadError as error:
            raise _with_file(error, path) from None
        return WeightsFile(path, "ncnn", state, graph_config=config)
    if path.suffix.lower() != ".safetensors":
        raw = load_legacy_file(path)
        stored = extract_state_dict(raw, source=str(path), strip=False)
        check_backed(stored, path.stat().st_size, source=str(path))
        return WeightsFile(path, "pytorch-pickle", stored)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ModelLoadError(f"{path}: cannot read ({error.strerror or error})") from None
    from safetensors.torch import load as safetensors_load

    try:
        state = safetensors_load(data)
    except Exception as error:  # SafetensorError is not exported consistently across versions
        raise ModelLoadError(f"{path}: not a readable safetensors file ({error})") from None
    return WeightsFile(path, "safetensors", state, read_safetensors_metadata(data))


def find_recipe(registry: ArchRegistry, weights: WeightsFile, meta: Mapping[str, Any] | None) -> Recipe:
    """config.json (``meta``) > safetensors header > detection; raises when none gives a recipe."""
    declared = declared_config(weights, meta)
    if declared is None:
        config, state = detect(registry, weights)
        return Recipe(config, DETECTED, state)
    config, source = declared
    return Recipe(config, source, fitting_state(registry, config, weights.candidates()))


def declared_config(weights: WeightsFile, meta: Mapping[str, Any] | None) -> tuple[ArchConfig, str] | None:
    """The recipe the file states (config.json, else its safetensors header), or None."""
    if meta is not None:
        return ArchConfig.from_dict(meta), CONFIG_JSON
    if weights.graph_config is not None:
        return weights.graph_config, NCNN_GRAPH
    if SAFETENSORS_CONFIG_KEY not in weights.header:
        return None
    try:
        return ArchConfig.from_dict(json.loads(weights.header[SAFETENSORS_CONFIG_KEY])), HEADER
    except (ValueError, KeyError, TypeError) as error:
        raise ModelLoadError(f"{weights.path}: unreadable {SAFETENSORS_CONFIG_KEY} metadata ({error})") from None


def detect(registry: ArchRegistry, weights: WeightsFile) -> tuple[ArchConfig, dict[str, torch.Tensor]]:
    """The first candidate name set an architecture matches; else the first set's error, naming the file."""
    first_error: ModelLoadError | None = None
    for state in weights.candidates():
        try:
            return registry.detect(state), state
        except ModelLoadError as error:
            first_error = first_error or error
    assert first_error is not None
    raise _with_file(first_error, weights.path) from None


def fitting_state(
    registry: ArchRegistry, config: ArchConfig, candidates: list[dict[str, torch.Tensor]]
) -> dict[str, torch.Tensor]:
    """The first candidate whose names and shapes ``config``'s model has (the first one if none fits:
    the load then reports the mismatch)."""
    if len(candidates) > 1:
        expected = expected_state(registry, config)
        for state in candidates:
            if expected is not None and not mismatch_summary(expected, state):
                return state
    return candidates[0]


def matching_scales(
    registry: ArchRegistry, config: ArchConfig, state: Mapping[str, torch.Tensor]
) -> tuple[int, ...]:
    """Every scale of ``config.arch`` whose model has exactly ``state``'s names and shapes.

    More than one element: the scale of a detected state dict is a guess (FSRCNN, PAN x2/x3).
    """
    try:
        spec = registry.get(config.arch)
    except JdsrError:
        return ()
    found = []
    for scale in spec.scales:
        expected = expected_state(registry, ArchConfig(config.arch, scale, dict(config.kwargs)))
        if expected is not None and not mismatch_summary(expected, state):
            found.append(scale)
    return tuple(found)


def mismatch_summary(
    expected: Mapping[str, torch.Tensor], found: Mapping[str, torch.Tensor], limit: int = 3
) -> str:
    """Empty when names and shapes agree; else 'missing k1, k2 (+n); unexpected ...; shape ...'."""

    def head(items: list[str]) -> str:
        more = len(items) - limit
        return ", ".join(items[:limit]) + (f" (+{more} more)" if more > 0 else "")

    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    shapes = [
        f"{k} {tuple(found[k].shape)} vs {tuple(expected[k].shape)} expected"
        for k in expected
        if k in found and tuple(found[k].shape) != tuple(expected[k].shape)
    ]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing ({head(missing)})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected ({head(unexpected)})")
    if shapes:
        parts.append(f"{len(shapes)} with another shape ({head(shapes)})")
    return "; ".join(parts)


def default_registry(registry: ArchRegistry | None) -> ArchRegistry:
    if registry is not None:
        return registry
    from jdsr_cli.archs import REGISTRY

    return REGISTRY


def expected_state(registry: ArchRegistry, config: ArchConfig) -> dict[str, torch.Tensor] | None:
    """The state dict ``config`` builds, on the meta device (no memory, no init cost); None if it cannot."""
    try:
        with torch.device("meta"):
            return registry.build(config).state_dict()
    except Exception:  # a builder that rejects this scale/kwargs combination: nothing fits it
        return None


def _with_file(error: ModelLoadError, weights: Path) -> ModelLoadError:
    """The same error class, its message prefixed with the file (UnknownArchitectureError stays one)."""
    message = str(error)
    if message.startswith(str(weights)):
        return error
    return type(error)(f"{weights}: {message}")
