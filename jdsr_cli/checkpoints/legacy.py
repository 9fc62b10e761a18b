"""Legacy PyTorch checkpoints (``.pth`` / ``.pt``): safe loading, unwrapping and prefix stripping.

Files are read with ``torch.load(..., weights_only=True)`` only: a pickle that needs code execution (a
custom class, an arbitrary global such as ``posix.system``) is refused, never run, and the refusal names
that global in one line. Training frameworks nest the weights
(BasicSR: ``{"params_ema": ..., "params": ...}``; others: ``state_dict``, ``model``, ``net``, ``netG``,
``generator``) and prefix names (``module.`` from DataParallel, ``model.``, ``netG.``); both are undone
here so the registry can detect the architecture from names and shapes.
"""

from __future__ import annotations

import os
import pickle
import pickletools
import re
import warnings
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

#: "Unsupported global: GLOBAL posix.system was not ..." / "unsupported GLOBAL posix.system whose module ..."
_GLOBAL = re.compile(r"\bGLOBAL\s+([A-Za-z_][\w.]*[\w])")
#: lines of torch's weights_only message that only advise (never shown)
_TORCH_ADVICE = ("Weights only load failed", "Check the documentation", "(1)", "(2)")


def load_legacy_file(path: str | os.PathLike[str]) -> Any:
    """``torch.load`` with ``weights_only=True`` on CPU; a refused or unreadable file -> ModelLoadError.

    A zip entry that is compressed is refused before the load: ``torch.save`` stores them as they are, and a
    deflated one can inflate about 1000:1 inside ``torch.load``.
    """
    file = Path(path)
    _refuse_compressed_entries(file)
    try:
        with warnings.catch_warnings():  # torch's "Detected pickle protocol 4" advice would print beside our line
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            return torch.load(file, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ModelLoadError(f"{file}: no such file") from None
    except IsADirectoryError:
        raise ModelLoadError(f"{file}: is a folder, not a .pth/.pt file") from None
    except pickle.UnpicklingError as error:
        blocked = blocked_global(str(error))
        if blocked is not None:
            blocked = qualified_global(file, blocked)
            raise ModelLoadError(
                f"{file}: refusing to load: its pickle needs {blocked}, which is not a tensor or plain container "
                "(nothing was run; use a .safetensors or plain state-dict file)"
            ) from None
        raise ModelLoadError(f"{file}: not a readable PyTorch checkpoint ({_short_reason(str(error))})") from None
    except Exception as error:  # a corrupt pickle can fail anywhere (IndexError, KeyError, EOFError...)
        detail = _short_reason(str(error)) if str(error).strip() else type(error).__name__
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
    tensors = extract_state_dict(load_legacy_file(path), source=str(path))
    check_backed(tensors, Path(path).stat().st_size, source=str(path))
    return tensors


def check_backed(tensors: Mapping[str, torch.Tensor], file_size: int, *, source: str) -> None:
    """Refuse tensors that declare more data than the file holds, before anything is built from their shapes.

    A pickle may hold views: one stored element expanded (stride 0) to any shape, or many overlapping views of
    one storage. Their shapes are what detection and the network's build believe, so a 2.5 KB file could make
    jdsr allocate hundreds of GiB. Each tensor needs its own elements' bytes in its storage, and the distinct
    tensors together at most the file's size (tied weights, one view under two names, count once).
    """
    total, seen = 0, set()
    for name, tensor in tensors.items():
        needed = tensor.numel() * tensor.element_size()
        stored = tensor.untyped_storage().nbytes()
        if needed > stored:
            raise ModelLoadError(
                f"{source}: refusing to load: tensor {name} {tuple(tensor.shape)} has more elements than the data "
                f"stored for it ({needed} bytes declared, {stored} stored: an expanded or overlapping view)"
            )
        view = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape), tensor.stride(),
                tensor.dtype)
        if view not in seen:
            seen.add(view)
            total += needed
    if total > file_size:
        raise ModelLoadError(
            f"{source}: refusing to load: its tensors declare {total} bytes, more than the file holds "
            f"({file_size} bytes: overlapping views of the same data)"
        )


def _refuse_compressed_entries(file: Path) -> None:
    """A zip-format checkpoint whose entries are not all stored uncompressed -> ModelLoadError."""
    try:
        if not zipfile.is_zipfile(file):
            return
        with zipfile.ZipFile(file) as archive:
            packed = [info.filename for info in archive.infolist() if info.compress_type != zipfile.ZIP_STORED]
    except (OSError, zipfile.BadZipFile, ValueError):
        return  # torch.load reports what it cannot read
    if packed:
        raise ModelLoadError(
            f"{file}: refusing to load: {packed[0]} is compressed inside the file (torch.save never compresses; "
            "a compressed entry can inflate about 1000 times); save it again with torch.save"
        )


def blocked_global(message: str) -> str | None:
    """The global (``module.name``) torch's safe unpickler refused, from its message; None if it refused
    something else. Only the name is kept: torch's advice to load without the safety net is never shown."""
    found = _GLOBAL.search(message)
    return found.group(1) if found else None


#: protocol 0-2 pickles name Python 3's builtins by their Python 2 module
_PY2_MODULES = {"__builtin__": "builtins"}
#: the pickle of a zip-format checkpoint is small (tensor data lives in other entries); more is not read
_MAX_PICKLE_BYTES = 64 * 2**20


def qualified_global(file: Path, name: str) -> str:
    """``module.name`` for a global torch's message names bare (it says ``eval`` for ``builtins.eval``), read from
    the pickle's opcodes without running them; ``name`` itself when the pickle does not say more."""
    if "." in name:
        return name
    try:
        for module, found in _pickle_globals(_pickle_bytes(file)):
            if found == name:
                return f"{module}.{found}"
    except (OSError, ValueError, zipfile.BadZipFile, pickle.UnpicklingError, EOFError):
        pass  # the name torch gave is still right, only shorter
    return name


def _pickle_bytes(file: Path) -> bytes:
    if zipfile.is_zipfile(file):
        with zipfile.ZipFile(file) as archive:
            entry = next((i for i in archive.infolist() if i.filename.endswith("data.pkl")), None)
            if entry is None or entry.file_size > _MAX_PICKLE_BYTES:
                return b""
            return archive.read(entry)
    with file.open("rb") as handle:
        return handle.read(_MAX_PICKLE_BYTES)


def _pickle_globals(data: bytes) -> list[tuple[str, str]]:
    """Every (module, name) a pickle imports: GLOBAL's argument, or STACK_GLOBAL's two preceding strings."""
    found, strings = [], []
    for opcode, argument, _ in pickletools.genops(data):
        if opcode.name == "GLOBAL":
            module, _, name = str(argument).partition(" ")
            found.append((_PY2_MODULES.get(module, module), name))
        elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
            found.append((strings[-2], strings[-1]))
        elif isinstance(argument, str) and "UNICODE" in opcode.name:
            strings.append(argument)
    return found


def _short_reason(message: str) -> str:
    """The informative sentence of a reader's error, without torch's advice about ``weights_only``."""
    message = message.split("WeightsUnpickler error:", 1)[-1]  # the reason follows torch's marker, if any
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    useful = [line for line in lines if "weights_only" not in line.lower() and not line.startswith(_TORCH_ADVICE)]
    return _first_sentence(useful[0]) if useful else "unsupported content"


def _first_sentence(text: str) -> str:
    return text.strip().split(". ", 1)[0].rstrip(".")
