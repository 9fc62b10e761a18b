"""``jdsr models export``: a checkpoint as an ONNX model, checked against PyTorch before anything is written.

The graph has symbolic height and width; the parity check runs ONNX Runtime on an input of a size other than
the traced one (so the dynamic axes are exercised) and compares with the PyTorch fp32 output: a model that
disagrees (max |Δ| above ``FP32_MAX_ABS``, or below ``FP16_MIN_PSNR`` dB for ``--fp16``) is refused and
nothing is written. The checkpoint's ``config.json`` facts travel in the ONNX metadata (``jdsr.config``).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from jdsr_cli.engine.onnx_runtime import DEFAULT_OPSET, OnnxNet, export_model_proto, set_metadata
from jdsr_cli.errors import JdsrError, UsageError

if TYPE_CHECKING:
    from jdsr_cli.checkpoints.load import LoadedModel

FORMATS = ("onnx",)
FP32_MAX_ABS = 1e-3  # of a [0, 1] image: a quarter of one 8-bit level
FP16_MIN_PSNR = 45.0  # dB against the fp32 PyTorch output (8-bit rounding alone is 59 dB)
PROBE = (40, 56)  # the parity input's height and width (not the traced TRACE_SIDE²)


class ExportMismatchError(JdsrError):
    """The exported graph does not reproduce the PyTorch model."""


@dataclass(frozen=True)
class ExportReport:
    path: Path
    opset: int
    fp16: bool
    max_abs_diff: float
    psnr: float
    seconds: float
    size_bytes: int


def default_path(loaded: LoadedModel, fp16: bool) -> Path:
    """``NAME[-fp16].onnx`` in the current folder. The name comes from the model's config.json, i.e. from whoever
    made the file: only its last component is used (never a folder), and ``.``, ``..`` or nothing fall back to the
    source's own stem."""
    name = _file_stem(loaded.name) or _file_stem(Path(str(loaded.source)).stem) or "model"
    return Path(f"{name}{'-fp16' if fp16 else ''}.onnx")


def _file_stem(name: str) -> str:
    last = str(name or "").replace("\\", "/").rstrip("/").rsplit("/", 1)[-1].strip()
    return "" if last in ("", ".", "..") else last


def onnx_bytes(loaded: LoadedModel, *, opset: int = DEFAULT_OPSET, fp16: bool = False) -> bytes:
    """The serialised ONNX model of ``loaded`` (folded for deployment), with jdsr's metadata."""
    model = deployment_copy(loaded)
    proto = export_model_proto(model, int(getattr(model, "in_channels", 3)), opset, fp16)
    set_metadata(proto, {"jdsr.config": json.dumps(config_facts(loaded), sort_keys=True),
                         "jdsr.scale": str(loaded.config.scale),
                         "jdsr.io": "NCHW float RGB in [0, 1] -> NCHW, scale× larger (clamp and round yourself)"})
    return proto.SerializeToString()


def export_onnx(loaded: LoadedModel, path: Path | None = None, *, opset: int = DEFAULT_OPSET,
                fp16: bool = False) -> ExportReport:
    """Export, check against PyTorch, then write ``path`` atomically; ExportMismatchError writes nothing."""
    from jdsr_cli.io.atomic import atomic_write_bytes
    from jdsr_cli.io.destinations import check_writable_file

    start = time.perf_counter()
    target = path or default_path(loaded, fp16)
    if target.is_dir():  # -o FOLDER: the default name inside it
        target = target / default_path(loaded, fp16).name
    if target.suffix.lower() != ".onnx":  # never write a model over a photo named by a slip of -o
        raise UsageError(f"-o {target}: an ONNX model's file name ends in .onnx")
    check_writable_file(target, "-o", example="model.onnx")  # before the export's seconds of work
    data = onnx_bytes(loaded, opset=opset, fp16=fp16)
    max_abs, psnr = parity(loaded, OnnxNet(data))
    if (not fp16 and max_abs > FP32_MAX_ABS) or (fp16 and psnr < FP16_MIN_PSNR):
        limit = f"{FP16_MIN_PSNR} dB" if fp16 else f"max |Δ| {FP32_MAX_ABS}"
        raise ExportMismatchError(f"{target}: not written, the ONNX model disagrees with PyTorch (max |Δ| "
                                  f"{max_abs:.2e}, PSNR {psnr:.1f} dB; needed {limit})")
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(target, data)
    return ExportReport(target, opset, fp16, max_abs, psnr, time.perf_counter() - start, os.path.getsize(target))


def onnx_cache_dir() -> Path:
    """Where ``--backend onnxruntime`` keeps the models it exported: $JDSR_CACHE_DIR/onnx, else the XDG cache."""
    root = os.environ.get("JDSR_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "jdsr")
    return Path(root) / "onnx"


def weights_digest(model: torch.nn.Module) -> str:
    """sha256 of the tensors a network actually holds (names, dtypes, shapes and bytes).

    Not the checkpoint file's sha256: a model changed in memory (``--denoise`` interpolates two of them) has
    the file's metadata but other weights, and must not meet the other model's cached export.
    """
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        data = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{data.dtype}:{tuple(data.shape)};".encode())
        digest.update(data.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def cached_onnx(loaded: LoadedModel) -> Path:
    """The checked fp32 ONNX export of ``loaded``, made once per weights (their sha256), opset and torch version."""
    digest = weights_digest(loaded.model)[:16]
    torch_version = torch.__version__.split("+")[0]
    path = onnx_cache_dir() / f"{loaded.config.arch}-x{loaded.config.scale}-{digest}-opset{DEFAULT_OPSET}-torch" \
        f"{torch_version}.onnx"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        export_onnx(loaded, path)
    return path


def deployment_copy(loaded: LoadedModel) -> torch.nn.Module:
    """A CPU fp32 copy of the network in its inference form (e.g. SPAN's convs folded)."""
    import copy

    model = copy.deepcopy(loaded.model).cpu().float().eval()
    deploy = getattr(model, "deployed_form", None)
    return deploy() if callable(deploy) else model


def parity(loaded: LoadedModel, runner: torch.nn.Module) -> tuple[float, float]:
    """(max |Δ|, PSNR in dB) between ``runner`` and the PyTorch fp32 model on a seeded PROBE-sized input."""
    model = deployment_copy(loaded)
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(1, int(getattr(model, "in_channels", 3)), *PROBE, generator=generator)
    with torch.no_grad():
        reference = model(x).float()
        got = runner(x).float()
    if got.shape != reference.shape:
        raise ExportMismatchError(f"the ONNX model's output is {tuple(got.shape)}, PyTorch's {tuple(reference.shape)}")
    error = (got - reference).abs()
    mse = float(error.square().mean())
    return float(error.max()), (math.inf if mse == 0 else 10 * math.log10(1.0 / mse))


def config_facts(loaded: LoadedModel) -> dict[str, object]:
    return {**loaded.config.to_dict(), "name": loaded.name, "source": str(loaded.source),
            "weights_sha256": loaded.meta.get("weights_sha256")}
