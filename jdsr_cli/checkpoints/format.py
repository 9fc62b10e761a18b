"""The jdsr checkpoint format: a folder holding ``model.safetensors`` and ``config.json``.

``config.json`` is the recipe that rebuilds the network without guessing::

    {"format": "jdsr-checkpoint", "format_version": 1, "name": "imdn-x4",
     "arch": "imdn", "scale": 4, "kwargs": {...}, "in_channels": 3, "out_channels": 3,
     "weights_sha256": "<sha256 of model.safetensors>", "training": {...}, "metrics": {...},
     "created": "2024-01-01T00:00:00+00:00", "jdsr_version": "0.1.0"}

The safetensors header also carries the ``ArchConfig`` (metadata key ``jdsr_config``), so a lone
``.safetensors`` file copied out of its folder still rebuilds exactly; without either, the
architecture is detected from tensor names and shapes. Legacy ``.pth``/``.pt`` files are accepted
on load (``jdsr_cli.checkpoints.legacy``) but never written.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from jdsr_cli.archs.registry import ArchConfig
from jdsr_cli.checkpoints.digest import sha256_file
from jdsr_cli.checkpoints.swap import recover_missing
from jdsr_cli.errors import JdsrError, ModelLoadError

if TYPE_CHECKING:
    from jdsr_cli.archs.base import SRNet
    from jdsr_cli.archs.registry import ArchRegistry
    from jdsr_cli.checkpoints.manifest import ManifestEntry

FORMAT_NAME = "jdsr-checkpoint"
FORMAT_VERSION = 1
WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
#: safetensors header metadata key holding ``ArchConfig.to_dict()`` as JSON
SAFETENSORS_CONFIG_KEY = "jdsr_config"

RESERVED_KEYS = frozenset(
    {
        "format",
        "format_version",
        "name",
        "arch",
        "scale",
        "kwargs",
        "in_channels",
        "out_channels",
        "weights_sha256",
        "training",
        "metrics",
        "created",
        "jdsr_version",
    }
)


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


# --------------------------------------------------------------------------------------------- load


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
        weights,
        config_path,
        registry=registry,
        map_location=map_location,
        source=str(path),
        scale_hint=scale_hint,
    )


def locate_checkpoint_files(path: str | os.PathLike[str]) -> tuple[Path, Path | None]:
    """``(weights file, config.json or None)`` for any accepted form of ``path``."""
    from jdsr_cli.checkpoints.legacy import LEGACY_SUFFIXES

    p = Path(path).expanduser()
    if not p.exists():
        recover_missing(p)  # a save killed between its two renames: finish it
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
    if suffix in LEGACY_SUFFIXES:
        return p, None
    raise ModelLoadError(
        f"{p}: unsupported file type {suffix or '(no suffix)'!r}; expected a checkpoint folder, "
        f"config.json, .safetensors or {'/'.join(LEGACY_SUFFIXES)}"
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
    registry = _default_registry(registry)
    weights = Path(weights)
    source = source or str(weights)
    state, file_meta, digest, config, meta = _read_weights_and_config(weights, config_path, registry)
    if meta.get("config_source") == "detected":
        candidates = matching_scales(registry, config, state)
        meta["scale_candidates"] = list(candidates)
        if scale_hint is not None and scale_hint != config.scale and scale_hint in candidates:
            config = ArchConfig(config.arch, scale_hint, dict(config.kwargs))
            meta["scale"] = scale_hint
    model = build_and_load(registry, config, state, source=source)
    if str(map_location) != "cpu":
        model = model.to(map_location)
    model.eval()
    name = str(meta.get("name") or _default_name(weights))
    return LoadedModel(model=model, config=config, meta=meta, source=source, name=name)


def build_and_load(
    registry: ArchRegistry, config: ArchConfig, state: Mapping[str, torch.Tensor], *, source: str
) -> SRNet:
    """Build ``config`` and load ``state`` strictly; any mismatch -> ModelLoadError with a summary."""
    try:
        model = registry.build(config)
    except JdsrError as error:
        raise ModelLoadError(f"{source}: cannot build {_describe(config)}: {error}") from error
    except (TypeError, ValueError) as error:
        raise ModelLoadError(f"{source}: cannot build {_describe(config)}: {error}") from error
    expected = model.state_dict()
    problems = mismatch_summary(expected, state)
    if problems:
        raise ModelLoadError(f"{source}: the weights do not fit {_describe(config)}: {problems}")
    try:
        model.load_state_dict(dict(state), strict=True)
    except RuntimeError as error:  # e.g. dtype that cannot be copied
        raise ModelLoadError(f"{source}: cannot load the weights: {str(error).splitlines()[0]}") from error
    return model


def matching_scales(
    registry: ArchRegistry, config: ArchConfig, state: Mapping[str, torch.Tensor]
) -> tuple[int, ...]:
    """Every scale of ``config.arch`` whose model has exactly ``state``'s names and shapes.

    Built on the meta device (no memory, no init cost). More than one element: the scale of a
    detected state dict is a guess.
    """
    try:
        spec = registry.get(config.arch)
    except JdsrError:
        return ()
    found = []
    for scale in spec.scales:
        try:
            with torch.device("meta"):
                expected = spec.build(scale=scale, **dict(config.kwargs)).state_dict()
        except Exception:  # a builder that rejects this scale/kwargs combination: not a candidate
            continue
        if not mismatch_summary(expected, state):
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


# ------------------------------------------------------------------------------------------ inspect


def inspect_checkpoint(path: str | os.PathLike[str], registry: ArchRegistry | None = None) -> dict[str, Any]:
    """Everything ``jdsr models inspect FILE`` prints. Never raises for a sha or detection mismatch:
    those are reported (``sha256_ok``, ``detected_matches_config``, ``detect_error``)."""
    registry = _default_registry(registry)
    weights, config_path = locate_checkpoint_files(path)
    state, file_meta, kind = _read_state(weights)
    digest = sha256_file(weights)
    meta = _read_config_json(config_path) if config_path else None

    config: ArchConfig | None = None
    config_source = None
    if meta is not None:
        config, config_source = ArchConfig.from_dict(meta), "config.json"
    elif SAFETENSORS_CONFIG_KEY in file_meta:
        config, config_source = _config_from_metadata(file_meta, weights), "safetensors-metadata"

    detected: ArchConfig | None = None
    detect_error = None
    try:
        detected = registry.detect(state)
    except ModelLoadError as error:
        detect_error = str(error)
    if config is None and detected is not None:
        config, config_source = detected, "detected"
    candidates = list(matching_scales(registry, detected, state)) if detected is not None else None

    expected_sha = meta.get("weights_sha256") if meta else None
    info: dict[str, Any] = {
        "file": str(weights),
        "config_file": str(config_path) if config_path else None,
        "format": kind,
        "name": (meta or {}).get("name") or _default_name(weights),
        "arch": config.arch if config else None,
        "scale": config.scale if config else None,
        "kwargs": dict(config.kwargs) if config else None,
        "config_source": config_source,
        "detected": detected.to_dict() if detected else None,
        "detected_matches_config": (_same_config(detected, config) if detected and config_source != "detected" else None),
        "detect_error": detect_error,
        "scale_candidates": candidates,
        "sha256": digest,
        "sha256_expected": expected_sha,
        "sha256_ok": (expected_sha == digest) if expected_sha else None,
        "file_size": weights.stat().st_size,
        "tensor_count": len(state),
        "dtypes": sorted({str(t.dtype).removeprefix("torch.") for t in state.values()}),
        "tensor_elements": int(sum(t.numel() for t in state.values())),
        "params": None,
        "in_channels": (meta or {}).get("in_channels"),
        "out_channels": (meta or {}).get("out_channels"),
        "supports_fp16": None,
        "supports_bf16": None,
        "size_requirement": None,
        "load_error": None,
        "metrics": (meta or {}).get("metrics"),
        "training": (meta or {}).get("training"),
        "created": (meta or {}).get("created"),
        "jdsr_version": (meta or {}).get("jdsr_version"),
    }
    if config is not None:
        try:
            spec = registry.get(config.arch)
        except JdsrError as error:
            info["load_error"] = str(error)
        else:
            info["supports_fp16"] = spec.supports_fp16
            info["supports_bf16"] = spec.supports_bf16
            info["size_requirement"] = {"minimum": spec.size.minimum, "multiple_of": spec.size.multiple_of}
            try:
                model = build_and_load(registry, config, state, source=str(weights))
            except ModelLoadError as error:
                info["load_error"] = str(error)
            else:
                info["params"] = int(sum(p.numel() for p in model.parameters()))
                info["in_channels"] = int(getattr(model, "in_channels", 3))
                info["out_channels"] = int(getattr(model, "out_channels", 3))
    return info


# ------------------------------------------------------------------------------------------ helpers


def read_safetensors_metadata(data: bytes) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors blob (``{}`` if absent or unreadable)."""
    try:
        (length,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8 : 8 + length])
        meta = header.get("__metadata__") or {}
        return {str(k): str(v) for k, v in meta.items()}
    except (struct.error, ValueError, AttributeError):
        return {}


def _default_registry(registry: ArchRegistry | None) -> ArchRegistry:
    if registry is not None:
        return registry
    from jdsr_cli.archs import REGISTRY

    return REGISTRY


def _read_state(weights: Path) -> tuple[dict[str, torch.Tensor], dict[str, str], str]:
    """``(state dict, safetensors metadata, kind)`` where kind is 'safetensors' or 'pytorch-pickle'."""
    from jdsr_cli.checkpoints.legacy import load_legacy_state_dict

    if weights.suffix.lower() != ".safetensors":
        return load_legacy_state_dict(weights), {}, "pytorch-pickle"
    try:
        data = weights.read_bytes()
    except OSError as error:
        raise ModelLoadError(f"{weights}: cannot read ({error.strerror or error})") from None
    from safetensors.torch import load as safetensors_load

    try:
        state = safetensors_load(data)
    except Exception as error:  # SafetensorError is not exported consistently across versions
        raise ModelLoadError(f"{weights}: not a readable safetensors file ({error})") from None
    return state, read_safetensors_metadata(data), "safetensors"


def _read_config_json(config_path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(Path(config_path).read_text(encoding="utf-8"))
    except OSError as error:
        raise ModelLoadError(f"{config_path}: cannot read ({error.strerror or error})") from None
    except ValueError as error:
        raise ModelLoadError(f"{config_path}: not valid JSON ({error})") from None
    if not isinstance(meta, dict):
        raise ModelLoadError(f"{config_path}: expected a JSON object")
    fmt = meta.get("format")
    if fmt != FORMAT_NAME:
        raise ModelLoadError(f"{config_path}: not a jdsr checkpoint config (format {fmt!r}, expected {FORMAT_NAME!r})")
    version = meta.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise ModelLoadError(f"{config_path}: invalid format_version {version!r}")
    if version > FORMAT_VERSION:
        raise ModelLoadError(
            f"{config_path}: format_version {version} was written by a newer jdsr "
            f"(this one reads up to {FORMAT_VERSION}); upgrade jdsr"
        )
    for key in ("arch", "scale"):
        if key not in meta:
            raise ModelLoadError(f"{config_path}: missing {key!r}")
    if not isinstance(meta["arch"], str) or not isinstance(meta["scale"], int) or isinstance(meta["scale"], bool):
        raise ModelLoadError(f"{config_path}: 'arch' must be a string and 'scale' an integer")
    if not isinstance(meta.get("kwargs", {}), dict):
        raise ModelLoadError(f"{config_path}: 'kwargs' must be an object")
    return meta


def _config_from_metadata(file_meta: Mapping[str, str], weights: Path) -> ArchConfig:
    try:
        return ArchConfig.from_dict(json.loads(file_meta[SAFETENSORS_CONFIG_KEY]))
    except (ValueError, KeyError, TypeError) as error:
        raise ModelLoadError(f"{weights}: unreadable {SAFETENSORS_CONFIG_KEY} metadata ({error})") from None


def _read_weights_and_config(
    weights: Path, config_path: str | os.PathLike[str] | None, registry: ArchRegistry
) -> tuple[dict[str, torch.Tensor], dict[str, str], str, ArchConfig, dict[str, Any]]:
    from jdsr_cli.checkpoints.legacy import LEGACY_SUFFIXES, extract_state_dict, load_legacy_file

    digest = sha256_file(weights) if weights.is_file() else ""
    if config_path is not None:
        meta = _read_config_json(Path(config_path))
        expected = meta.get("weights_sha256")
        if expected and expected.lower() != digest:
            raise ModelLoadError(
                f"{weights}: sha256 mismatch: expected {expected} (from {Path(config_path).name}), "
                f"actual {digest}; the file is corrupt or was modified"
            )
    else:
        meta = None

    if weights.suffix.lower() in LEGACY_SUFFIXES:
        raw = load_legacy_file(weights)
        state = extract_state_dict(raw, source=str(weights))
        file_meta: dict[str, str] = {}
        if meta is None:
            state, config = _detect_legacy(registry, raw, state, weights)
            return state, file_meta, digest, config, _synthesized_meta(weights, config, digest, "detected")
    else:
        state, file_meta, _ = _read_state(weights)

    if meta is not None:
        config = ArchConfig.from_dict(meta)
        return state, file_meta, digest, config, meta
    if SAFETENSORS_CONFIG_KEY in file_meta:
        config = _config_from_metadata(file_meta, weights)
        return state, file_meta, digest, config, _synthesized_meta(weights, config, digest, "safetensors-metadata")
    try:
        config = registry.detect(state)
    except ModelLoadError as error:
        raise _with_file(error, weights) from None
    return state, file_meta, digest, config, _synthesized_meta(weights, config, digest, "detected")


def _detect_legacy(
    registry: ArchRegistry, raw: Any, state: dict[str, torch.Tensor], weights: Path
) -> tuple[dict[str, torch.Tensor], ArchConfig]:
    """Detect on the prefix-stripped names; if nothing matches, on the names as stored."""
    from jdsr_cli.checkpoints.legacy import extract_state_dict

    try:
        return state, registry.detect(state)
    except ModelLoadError as stripped_error:
        unstripped = extract_state_dict(raw, source=str(weights), strip=False)
        if list(unstripped) == list(state):
            raise _with_file(stripped_error, weights) from None
        try:
            return unstripped, registry.detect(unstripped)
        except ModelLoadError:
            raise _with_file(stripped_error, weights) from None


def _with_file(error: ModelLoadError, weights: Path) -> ModelLoadError:
    """The same error class, its message prefixed with the file (UnknownArchitectureError stays one)."""
    message = str(error)
    if message.startswith(str(weights)):
        return error
    return type(error)(f"{weights}: {message}")


def _synthesized_meta(weights: Path, config: ArchConfig, digest: str, how: str) -> dict[str, Any]:
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "name": _default_name(weights),
        **config.to_dict(),
        "weights_sha256": digest,
        "training": {},
        "metrics": {},
        "config_source": how,
    }


def _default_name(weights: Path) -> str:
    return weights.parent.name if weights.name == WEIGHTS_NAME else weights.stem


def _same_config(a: ArchConfig, b: ArchConfig) -> bool:
    return a.arch == b.arch and a.scale == b.scale and _jsonish(a.kwargs) == _jsonish(b.kwargs)


def _jsonish(value: Any) -> Any:
    return json.loads(json.dumps(dict(value), sort_keys=True, default=str))


def _describe(config: ArchConfig) -> str:
    kwargs = ", ".join(f"{k}={v!r}" for k, v in sorted(config.kwargs.items()))
    return f"{config.arch} x{config.scale}" + (f" ({kwargs})" if kwargs else "")


def __getattr__(name: str) -> Any:
    """Names that moved to ``checkpoints.save`` stay importable from here."""
    if name in ("save_checkpoint", "state_dict_for_saving"):
        from jdsr_cli.checkpoints import save

        return getattr(save, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CONFIG_NAME",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "LoadedModel",
    "WEIGHTS_NAME",
    "build_and_load",
    "inspect_checkpoint",
    "load_checkpoint",
    "load_checkpoint_files",
    "locate_checkpoint_files",
    "matching_scales",
    "mismatch_summary",
    "save_checkpoint",
    "sha256_file",
]
