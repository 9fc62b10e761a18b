"""The jdsr checkpoint format: a folder holding ``model.safetensors`` and ``config.json``.

``config.json`` is the recipe that rebuilds the network without guessing::

    {"format": "jdsr-checkpoint", "format_version": 1, "name": "imdn-x4",
     "arch": "imdn", "scale": 4, "kwargs": {...}, "in_channels": 3, "out_channels": 3,
     "weights_sha256": "<sha256 of model.safetensors>", "training": {...}, "metrics": {...},
     "created": "2024-01-01T00:00:00+00:00", "jdsr_version": "0.1.0"}

The safetensors header also carries the ``ArchConfig`` (metadata key ``jdsr_config``), so a lone
``.safetensors`` file copied out of its folder still rebuilds exactly; without either, the
architecture is detected from tensor names and shapes. Legacy ``.pth``/``.pt`` files are accepted
on load (``checkpoints.legacy``) but never written.

This module holds the format's names and the readers of its two metadata places; it does not import
torch. Writing is ``checkpoints.save``, finding the recipe ``checkpoints.recipe``, loading
``checkpoints.load`` and ``jdsr models inspect`` ``checkpoints.inspection``.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from jdsr_cli.errors import ModelLoadError

FORMAT_NAME = "jdsr-checkpoint"
FORMAT_VERSION = 1
WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
#: safetensors header metadata key holding ``ArchConfig.to_dict()`` as JSON
SAFETENSORS_CONFIG_KEY = "jdsr_config"

#: config.json's own keys (``save_checkpoint(extra=...)`` may not override them)
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


def read_config_json(config_path: str | Path) -> dict[str, Any]:
    """A validated config.json; anything a loader could not trust is a ModelLoadError naming the file."""
    config_path = Path(config_path)
    try:
        meta = json.loads(config_path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ModelLoadError(f"{config_path}: cannot read ({error.strerror or error})") from None
    except ValueError as error:
        raise ModelLoadError(f"{config_path}: not valid JSON ({error})") from None
    if not isinstance(meta, dict):
        raise ModelLoadError(f"{config_path}: expected a JSON object")
    _check_version(meta, config_path)
    for key in ("arch", "scale"):
        if key not in meta:
            raise ModelLoadError(f"{config_path}: missing {key!r}")
    if not isinstance(meta["arch"], str) or not isinstance(meta["scale"], int) or isinstance(meta["scale"], bool):
        raise ModelLoadError(f"{config_path}: 'arch' must be a string and 'scale' an integer")
    if not isinstance(meta.get("kwargs", {}), dict):
        raise ModelLoadError(f"{config_path}: 'kwargs' must be an object")
    return meta


def _check_version(meta: dict[str, Any], config_path: Path) -> None:
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


def read_safetensors_metadata(data: bytes) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors blob (``{}`` if absent or unreadable)."""
    try:
        (length,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8 : 8 + length])
        meta = header.get("__metadata__") or {}
        return {str(k): str(v) for k, v in meta.items()}
    except (struct.error, ValueError, AttributeError):
        return {}


def default_name(weights: Path) -> str:
    """A display name for a checkpoint without one: its folder's name, or the file's stem."""
    return weights.parent.name if weights.name == WEIGHTS_NAME else weights.stem


__all__ = [
    "CONFIG_NAME",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "RESERVED_KEYS",
    "SAFETENSORS_CONFIG_KEY",
    "WEIGHTS_NAME",
    "default_name",
    "read_config_json",
    "read_safetensors_metadata",
]
