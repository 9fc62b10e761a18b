"""ONNX: export a network with dynamic height and width, and run an exported one as the engine's model.

The export goes through ``torch.onnx.export(dynamo=True)`` (the supported exporter); ``OnnxNet`` wraps an
ONNX Runtime session as an ``nn.Module`` taking and returning torch tensors, so the ``Upscaler``'s tiling,
batching, TTA and IO apply unchanged. ``onnx``, ``onnxscript`` and ``onnxruntime`` are the optional extra
``jdsr[onnx]``; without them every entry point raises one UsageError saying how to install it.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from jdsr_cli.errors import UsageError

if TYPE_CHECKING:
    import onnx

MIN_OPSET = 18  # the dynamo exporter's lowest
DEFAULT_OPSET = 18
TRACE_SIDE = 32  # the example input's side; the axes stay symbolic
TRACE_BATCH = 2  # a batch of 1 would be specialised to 1 by torch.export
INPUT, OUTPUT = "lr", "sr"
EXTRA = "pip install 'jdsr-cli[onnx]' (onnx, onnxscript, onnxruntime)"


def require(module: str) -> Any:
    """Import an optional ONNX package or explain in one line how to get it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise UsageError(f"ONNX support needs the {module} package: {EXTRA}") from None


def export_model_proto(model: nn.Module, in_channels: int, opset: int, fp16: bool) -> onnx.ModelProto:
    """``model`` (eval mode, on the CPU) as an ONNX graph with symbolic batch, height and width."""
    if opset < MIN_OPSET:
        raise UsageError(f"--opset {opset}: the exporter needs at least {MIN_OPSET}")
    require("onnx")
    require("onnxscript")
    dtype = torch.float16 if fp16 else torch.float32
    net = model.to(dtype).eval()
    example = torch.rand(TRACE_BATCH, in_channels, TRACE_SIDE, TRACE_SIDE, dtype=dtype)
    dims = {0: torch.export.Dim("batch", min=1, max=1 << 10), 2: torch.export.Dim("height", min=1, max=1 << 16),
            3: torch.export.Dim("width", min=1, max=1 << 16)}
    with _quiet_exporter(), torch.no_grad():
        program = torch.onnx.export(net, (example,), None, dynamo=True, dynamic_shapes=(dims,), opset_version=opset,
                                    input_names=[INPUT], output_names=[OUTPUT], verbose=False)
    return program.model_proto


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The exporter prints its progress, logs optional-op skips and warns about its own internals: not for users."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def set_metadata(proto: onnx.ModelProto, metadata: Mapping[str, str]) -> None:
    """Replace the model's ``metadata_props`` entries named in ``metadata``."""
    keep = [p for p in proto.metadata_props if p.key not in metadata]
    del proto.metadata_props[:]
    proto.metadata_props.extend(keep)
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value


def metadata_of(path: str | os.PathLike[str]) -> dict[str, str]:
    onnx = require("onnx")
    return {p.key: p.value for p in onnx.load(os.fspath(path), load_external_data=False).metadata_props}


class OnnxNet(nn.Module):
    """An ONNX Runtime session (CPU) behind ``forward(x) -> y`` on torch tensors (fp32 in, fp32 out)."""

    def __init__(self, model: bytes | str | os.PathLike[str], threads: int | None = None) -> None:
        super().__init__()
        ort = require("onnxruntime")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        source = model if isinstance(model, bytes) else os.fspath(model)
        self.session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
        self.input_type = self.session.get_inputs()[0].type  # tensor(float) or tensor(float16)
        self.in_channels = int(self.session.get_inputs()[0].shape[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        array = x.detach().float().contiguous().numpy()
        if self.input_type == "tensor(float16)":
            array = array.astype("float16")
        (y,) = self.session.run([OUTPUT], {INPUT: array})
        return torch.from_numpy(y).float()
