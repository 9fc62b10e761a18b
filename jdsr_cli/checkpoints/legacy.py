"""Legacy PyTorch checkpoints (``.pth`` / ``.pt``): safe loading, unwrapping and prefix stripping.

Files are read with ``torch.load(..., weights_only=True)`` only: a pickle that needs code execution (a
custom class, an arbitrary global) is refused, never run. Training frameworks nest the weights
(BasicSR: ``{"params_ema": ..., "params": ...}``; others: ``state_dict``, ``model``, ``net``, ``netG``,
``generator``) and prefix names (``module.`` from DataParallel, ``model.``, ``netG.``); both are undone
here so the registry can detect the architecture from names and shapes.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from jdsr_cli.errors import ModelLoadError

LEGACY_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")

#: wrapper keys, in order of preference (EMA weights are what BasicSR-style repos publish as the model)
WRAPPER_KEYS = ("params_ema", "params", "state_dict", "model", "net", "netG", "generator")

#: name prefixes stripped (repeatedly) when every tensor name carries them
STRIP_PREFIXES = ("module.", "model.", "netG.")


def load_legacy_file(path: str | os.PathLike[str]) -> Any:
    """``torch.load`` with ``weights_only=True`` on CPU; a refused or unreadable file -> ModelLoadError."""
    file = Path(path)
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ModelLoadError(f"{file}: no such file") from None
    except IsADirectoryError:
        raise ModelLoadError(f"{file}: is a folder, not a .pth/.pt file") from None
    except pickle.UnpicklingError as error:
        reason = _weights_only_reason(str(error))
        if _looks_like_torch_file(file):
            raise ModelLoadError(
                f"{file}: refusing to unpickle: the file needs code execution ({reason}); "
                "convert it to safetensors with a trusted tool"
            ) from None
        raise ModelLoadError(f"{file}: not a readable PyTorch checkpoint ({reason})") from None
    except Exception as error:  # a corrupt pickle can fail anywhere (IndexError, KeyError, EOFError...)
        detail = _first_line(str(error)) or type(error).__name__
        raise ModelLoadError(f"{file}: not a readable PyTorch checkpoint ({detail})") from None


def extract_state_dict(obj: Any, *, source: str = "checkpoint", strip: bool = True) -> dict[str, torch.Tensor]:
    """Unwrap nesting (and strip prefixes unless ``strip=False``); return a plain ``name -> tensor`` dict."""
    current = obj
    trail: list[str] = []
    for _ in range(8):  # nesting is shallow in practice; the bound only guards odd files
        if not isinstance(current, Mapping):
            break
        if current and all(isinstance(v, torch.Tensor) for v in current.values()):
            break
        for key in WRAPPER_KEYS:
            if key in current and isinstance(current[key], Mapping):
                trail.append(key)
                current = current[key]
                break
        else:
            break
    if not isinstance(current, Mapping):
        raise ModelLoadError(
            f"{source}: expected a state dict (a mapping of tensor names to tensors), found {type(current).__name__}"
        )
    tensors = {str(k): v for k, v in current.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        where = "/".join(trail) or "top level"
        keys = ", ".join(map(str, list(current)[:8])) or "nothing"
        raise ModelLoadError(f"{source}: no tensors found at {where} (keys: {keys})")
    return strip_prefixes(tensors) if strip else tensors


def strip_prefixes(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove ``module.`` / ``model.`` / ``netG.`` while every name starts with one of them."""
    names = list(state_dict)
    changed = True
    while changed:
        changed = False
        for prefix in STRIP_PREFIXES:
            if names and all(n.startswith(prefix) and len(n) > len(prefix) for n in names):
                names = [n[len(prefix) :] for n in names]
                changed = True
    return dict(zip(names, state_dict.values(), strict=True))


def load_legacy_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a ``.pth``/``.pt`` file safely and return its (unwrapped, unprefixed) state dict."""
    return extract_state_dict(load_legacy_file(path), source=str(path))


def _weights_only_reason(message: str) -> str:
    """The one informative line of torch's long weights_only error."""
    marker = "WeightsUnpickler error:"
    if marker in message:
        tail = message.split(marker, 1)[1]
        for line in tail.splitlines():
            line = line.strip()
            if line:
                # "Unsupported global: GLOBAL x.Y was not an allowed global by default. Please use ..."
                return line.split(". Please", 1)[0].rstrip(".")
    return _first_line(message)


def _looks_like_torch_file(path: Path) -> bool:
    """A torch zip archive or a raw pickle (protocol 2+): a real checkpoint torch refused, not garbage."""
    try:
        if zipfile.is_zipfile(path):
            return True
        with open(path, "rb") as handle:
            return handle.read(1) == b"\x80"
    except OSError:
        return False


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return text.strip() or "unknown error"
