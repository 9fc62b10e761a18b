"""Writing checkpoints: the weights and the recipe are encoded first, then swapped in as one folder.

Everything that can fail on the model (serialisation, a recipe that is not JSON) fails before the disk
is touched; the folder then changes as a whole (``checkpoints.swap``), so a kill or a full disk at any
point leaves the previous checkpoint or the new one, never weights that disagree with their config.json.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jdsr_cli import __version__
from jdsr_cli.checkpoints.format import (
    CONFIG_NAME,
    FORMAT_NAME,
    FORMAT_VERSION,
    RESERVED_KEYS,
    SAFETENSORS_CONFIG_KEY,
    WEIGHTS_NAME,
)
from jdsr_cli.checkpoints.swap import replace_folder
from jdsr_cli.errors import ModelLoadError
from jdsr_cli.ops.metrics import MetricConvention

if TYPE_CHECKING:
    import torch
    from torch import nn

    from jdsr_cli.archs.base import SRNet
    from jdsr_cli.archs.registry import ArchConfig


@dataclass(frozen=True)
class EncodedCheckpoint:
    """The two files of a checkpoint, ready to write."""

    weights: bytes
    config_text: str

    def write_into(self, folder: Path) -> None:
        """Write both files into ``folder`` (created if needed). Not atomic: write into a staging folder."""
        folder.mkdir(parents=True, exist_ok=True)
        (folder / WEIGHTS_NAME).write_bytes(self.weights)
        (folder / CONFIG_NAME).write_text(self.config_text, encoding="utf-8")


def save_checkpoint(
    folder: str | os.PathLike[str],
    model: SRNet,
    config: ArchConfig,
    *,
    name: str | None = None,
    training: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Replace ``folder`` by a checkpoint of ``model`` as a whole (see the module docstring); return ``folder``.

    Other files already in ``folder`` are kept. ``extra`` adds top-level config.json keys (not the
    format's own). Raises ModelLoadError / ValueError before writing anything, OSError from the disk.
    """
    target = Path(folder)
    encoded = encode_checkpoint(model, config, name=name or target.name, training=training, metrics=metrics,
                                extra=extra, where=target)
    with replace_folder(target) as staging:
        encoded.write_into(staging)
    return target


def write_checkpoint(
    folder: str | os.PathLike[str],
    model: SRNet,
    config: ArchConfig,
    *,
    name: str,
    training: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write a checkpoint into a folder inside a ``replace_folder`` block (several parts swapped as one)."""
    target = Path(folder)
    encode_checkpoint(model, config, name=name, training=training, metrics=metrics, extra=extra,
                      where=target).write_into(target)
    return target


def encode_checkpoint(
    model: SRNet,
    config: ArchConfig,
    *,
    name: str,
    training: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
    where: Path = Path("."),
) -> EncodedCheckpoint:
    """Serialise the weights (with the recipe in the safetensors header) and config.json; ``where`` names
    the folder in errors."""
    arch_json = json.dumps(config.to_dict(), sort_keys=True)
    try:
        from safetensors.torch import save as safetensors_save

        blob = safetensors_save(state_dict_for_saving(model),
                                metadata={"format": "pt", SAFETENSORS_CONFIG_KEY: arch_json})
    except Exception as error:  # safetensors raises plain exceptions on odd tensors
        raise ModelLoadError(f"{where / WEIGHTS_NAME}: cannot serialise the weights ({error})") from error
    meta = _recipe(model, config, name=name, training=training, metrics=metrics, digest=hashlib.sha256(blob).hexdigest())
    if extra:
        clash = sorted(set(extra) & RESERVED_KEYS)
        if clash:
            raise ValueError(f"extra config.json keys may not override {', '.join(clash)}")
        meta.update(extra)
    try:
        text = json.dumps(meta, indent=2, allow_nan=False) + "\n"
    except (TypeError, ValueError) as error:
        raise ValueError(f"{where / CONFIG_NAME}: the recipe is not JSON-serialisable ({error})") from error
    return EncodedCheckpoint(weights=blob, config_text=text)


def state_dict_for_saving(model: nn.Module) -> dict[str, torch.Tensor]:
    """Detached, contiguous CPU copies: no two names share storage, which safetensors refuses to write
    (tied parameters are stored once per name and restored by a strict load)."""
    return {key: tensor.detach().to("cpu", copy=True).contiguous() for key, tensor in model.state_dict().items()}


def _recipe(
    model: SRNet,
    config: ArchConfig,
    *,
    name: str,
    training: Mapping[str, Any] | None,
    metrics: Mapping[str, Any] | None,
    digest: str,
) -> dict[str, Any]:
    """config.json's own keys (``format.RESERVED_KEYS``)."""
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "name": name,
        "arch": config.arch,
        "scale": int(config.scale),
        "kwargs": dict(config.kwargs),
        "in_channels": model.in_channels,
        "out_channels": model.out_channels,
        "weights_sha256": digest,
        "training": dict(training or {}),
        "metrics": {"convention": _default_convention(int(config.scale)), **dict(metrics or {})},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "jdsr_version": __version__,
    }


def _default_convention(scale: int) -> str:
    """The convention the training validation measures at ×scale (crop = scale), recorded with its numbers."""
    return MetricConvention.standard(scale).psnr_label
