"""An ncnn graph's weights and a plain PyTorch forward of it, layer by layer, as ncnn defines each layer.

Only the layers of the super-resolution graphs we import are understood (Real-ESRGAN's RRDBNet and
SRVGGNetCompact exports): Input, Split, Concat, Convolution (3×3/1×1, stride 1, same padding, fused ReLU or
LeakyReLU), PReLU, ReLU, Eltwise, BinaryOp, Interp (nearest, integer factors), PixelShuffle and Reorg.
The first layer outside that set, or with options outside it, is named in one ModelLoadError line.

The forward is slow and simple on purpose: the importer runs it once on a small input to prove that the
registry network it built from the weights computes what the graph computes (same wiring, same options).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from jdsr_cli.checkpoints.ncnn_format import BinReader, Layer
from jdsr_cli.errors import ModelLoadError

ACT_NONE, ACT_RELU, ACT_LEAKY = 0, 1, 2
ELTWISE_SUM = 1
BINARY_OPS = {0: torch.add, 1: torch.sub, 2: torch.mul}
NEAREST = 1
PASSIVE = {"Input", "Split", "Concat", "ReLU", "Eltwise", "BinaryOp", "Interp", "PixelShuffle", "Reorg"}


@dataclass(frozen=True)
class Conv:
    """A Convolution layer's weights and options, checked."""

    layer: Layer
    weight: torch.Tensor  # (out, in, k, k)
    bias: torch.Tensor | None
    activation: int
    slope: float


@dataclass
class NcnnGraph:
    layers: list[Layer]
    convs: dict[str, Conv]
    slopes: dict[str, torch.Tensor]  # PReLU layer name -> (C,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the graph on ``x`` (N, C, H, W); the result is the last blob produced."""
        blobs: dict[str, torch.Tensor] = {}
        last = x
        for layer in self.layers:
            args = [blobs[name] for name in layer.inputs]
            results = self._apply(layer, args, x)
            for name, value in zip(layer.outputs, results, strict=True):
                blobs[name] = value
                last = value
        return last

    def _apply(self, layer: Layer, args: list[torch.Tensor], x: torch.Tensor) -> list[torch.Tensor]:
        kind = layer.kind
        if kind == "Input":
            return [x]
        if kind == "Split":
            return [args[0]] * len(layer.outputs)
        if kind == "Concat":
            return [torch.cat(args, dim=1)]
        if kind == "Convolution":
            return [_run_conv(self.convs[layer.name], args[0])]
        if kind == "PReLU":
            return [F.prelu(args[0], self.slopes[layer.name])]
        if kind == "ReLU":
            return [F.leaky_relu(args[0], layer.get(0, 0.0)) if layer.get(0, 0.0) else F.relu(args[0])]
        if kind == "Eltwise":
            coefficients = layer.array(1) or (1.0,) * len(args)
            return [sum(c * a for c, a in zip(coefficients, args, strict=True))]
        if kind == "BinaryOp":
            return [BINARY_OPS[int(layer.get(0, 0))](args[0], args[1])]
        if kind == "Interp":
            factor = int(layer.get(1, 1.0))
            return [F.interpolate(args[0], scale_factor=factor, mode="nearest")]
        if kind == "PixelShuffle":
            return [F.pixel_shuffle(args[0], int(layer.get(0, 1)))]
        if kind == "Reorg":
            return [reorg(args[0], int(layer.get(0, 1)), int(layer.get(1, 0)))]
        raise AssertionError(kind)  # read_graph refused every other kind


def reorg(x: torch.Tensor, stride: int, mode: int) -> torch.Tensor:
    """ncnn's Reorg: space to depth. Mode 1 orders channels as PyTorch's pixel_unshuffle (c, dy, dx); mode 0
    puts the offset first ((dy, dx), c)."""
    out = F.pixel_unshuffle(x, stride)
    if mode == 1:
        return out
    n, c, h, w = x.shape[0], x.shape[1], out.shape[2], out.shape[3]
    return out.view(n, c, stride * stride, h, w).transpose(1, 2).reshape(n, c * stride * stride, h, w)


def _run_conv(conv: Conv, x: torch.Tensor) -> torch.Tensor:
    y = F.conv2d(x, conv.weight, conv.bias, padding=conv.weight.shape[-1] // 2)
    if conv.activation == ACT_RELU:
        return F.leaky_relu(y, conv.slope) if conv.slope else F.relu(y)
    if conv.activation == ACT_LEAKY:
        return F.leaky_relu(y, conv.slope)
    return y


def read_graph(layers: list[Layer], bin_path: Path) -> NcnnGraph:
    """Check every layer's kind and options and read its weights from ``bin_path`` in graph order."""
    reader = BinReader(bin_path)
    convs: dict[str, Conv] = {}
    slopes: dict[str, torch.Tensor] = {}
    seen: set[str] = set()
    for layer in layers:
        _check_inputs(layer, seen)
        if layer.kind == "Convolution":
            convs[layer.name] = _read_conv(layer, reader)
        elif layer.kind == "PReLU":
            count = int(layer.get(0, 1))
            if not 0 < count <= 65536:
                raise ModelLoadError(f"{layer.describe()}: {count} slopes is not a channel count")
            slopes[layer.name] = torch.from_numpy(reader.raw(count, f"{layer.describe()}'s slopes").copy())
        elif layer.kind not in PASSIVE:
            raise ModelLoadError(
                f"{layer.describe()} is not understood: jdsr imports ncnn graphs of RRDBNet and SRVGGNetCompact "
                "(Real-ESRGAN's families) only"
            )
        else:
            _check_passive(layer)
        seen.update(layer.outputs)
    reader.finish()
    return NcnnGraph(layers, convs, slopes)


def _check_inputs(layer: Layer, seen: set[str]) -> None:
    for name in layer.inputs:
        if name not in seen:
            raise ModelLoadError(f"{layer.describe()} reads blob {name!r} before any layer writes it")


def _check_passive(layer: Layer) -> None:
    """Options of the weightless layers that the forward above implements; anything else is named."""
    problem = ""
    if layer.kind == "Concat" and layer.get(0, 0) != 0:
        problem = "concatenates along an axis other than channels"
    elif layer.kind == "Eltwise" and (layer.get(0, 1) != ELTWISE_SUM or len(layer.array(1)) not in (0, len(layer.inputs))):
        problem = "is not a (weighted) sum"
    elif layer.kind == "BinaryOp" and (int(layer.get(0, 0)) not in BINARY_OPS or layer.get(1, 0) or len(layer.inputs) != 2):
        problem = "is not an add, subtract or multiply of two blobs"
    elif layer.kind == "Interp":
        factor = layer.get(1, 1.0)
        if 0 < factor < 1:
            problem = (f"resizes the network's output by {factor:g} (the file is a larger-scale model followed by a "
                       "resize): import that model's own file and give `--outscale` instead")
        elif (int(layer.get(0, 0)) != NEAREST or factor != layer.get(2, 1.0) or factor != int(factor)
                or layer.get(3, 0) or layer.get(4, 0)):
            problem = "is not a nearest-neighbour resize by a whole factor"
    elif layer.kind == "PixelShuffle" and (layer.get(1, 0) != 0 or not 1 <= layer.get(0, 1) <= 16):
        problem = "is not PyTorch's pixel shuffle"
    elif layer.kind == "Reorg" and not 1 <= layer.get(0, 1) <= 16:
        problem = "has an odd stride"
    if problem:
        raise ModelLoadError(f"{layer.describe()} is not understood: it {problem}")


def _read_conv(layer: Layer, reader: BinReader) -> Conv:
    out_ch, kernel = int(layer.get(0, 0)), int(layer.get(1, 0))
    size = int(layer.get(6, 0))
    options_ok = (
        kernel in (1, 3) and layer.get(11, kernel) == kernel and layer.get(2, 1) == 1 and layer.get(12, 1) == 1
        and layer.get(3, 1) == 1 and layer.get(13, 1) == 1 and layer.get(4, 0) == kernel // 2
        and layer.get(14, kernel // 2) == kernel // 2 and layer.get(15, kernel // 2) == kernel // 2
        and layer.get(16, kernel // 2) == kernel // 2 and not layer.get(8, 0)
        and int(layer.get(9, 0)) in (ACT_NONE, ACT_RELU, ACT_LEAKY)
    )
    if not options_ok:
        raise ModelLoadError(
            f"{layer.describe()} is not understood: only 1x1/3x3 convolutions with stride 1, dilation 1, same "
            "padding, float weights and no or a (leaky) ReLU activation are"
        )
    if out_ch < 1 or size < 1 or size % (out_ch * kernel * kernel):
        raise ModelLoadError(f"{layer.describe()}: {size} weights do not make {out_ch} outputs of {kernel}x{kernel}")
    in_ch = size // (out_ch * kernel * kernel)
    weight = reader.tagged(size, f"{layer.describe()}'s weights").reshape(out_ch, in_ch, kernel, kernel)
    bias = reader.raw(out_ch, f"{layer.describe()}'s bias") if layer.get(5, 0) else None
    slope = layer.array(10)[0] if layer.array(10) else 0.0
    return Conv(layer, torch.from_numpy(weight.copy()), None if bias is None else torch.from_numpy(np.copy(bias)),
                int(layer.get(9, 0)), float(slope))
