"""Import an ncnn ``.param`` + ``.bin`` pair as one of our registry networks (RRDBNet or SRVGGNetCompact).

The graph's convolutions, in graph order, become the registry network's parameters; the network is then
proven equal to the graph by running both on a small random input (``ncnn_graph``'s plain forward), so a
graph that merely has the right shapes but other wiring is refused, never silently mis-read.
Covers Real-ESRGAN's ``realesrgan-x4plus(-anime)`` (RRDBNet, any block count, ×4, or ×2 behind a Reorg
pixel-unshuffle front) and ``realesr-animevideov3-x2/x3/x4`` (SRVGGNetCompact, any conv count and scale).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch

from jdsr_cli.archs.registry import ArchConfig, ArchRegistry
from jdsr_cli.checkpoints.ncnn_format import bin_path_for, read_param
from jdsr_cli.checkpoints.ncnn_graph import ACT_LEAKY, ACT_NONE, ACT_RELU, Conv, NcnnGraph, read_graph
from jdsr_cli.errors import ModelLoadError

#: the largest output difference (relative to the output's range) still counted as the same network
VERIFY_TOLERANCE = 1e-4
VERIFY_SIZE = 12  # LR pixels a side of the check input (even: the ×2 RRDBNet front folds 2×2 pixels)


def import_ncnn(param: Path, registry: ArchRegistry) -> tuple[ArchConfig, dict[str, torch.Tensor]]:
    """The registry recipe and state dict that compute what ``param`` (and its ``.bin``) computes."""
    graph = read_graph(read_param(param), bin_path_for(param))
    config, state = recognise(graph)
    model = registry.build(config)
    _load_named(model, state, graph)
    _verify(graph, model, config, param)
    return config, state


def recognise(graph: NcnnGraph) -> tuple[ArchConfig, dict[str, torch.Tensor]]:
    kinds = [layer.kind for layer in graph.layers]
    convs = [graph.convs[layer.name] for layer in graph.layers if layer.kind == "Convolution"]
    if not convs:
        raise ModelLoadError("the graph has no convolutions: not an RRDBNet or SRVGGNetCompact")
    if "PixelShuffle" in kinds:
        return _srvgg(graph, convs)
    if kinds.count("Interp") == 2 and len(convs) >= 21 and (len(convs) - 6) % 15 == 0:
        return _rrdbnet(graph, convs)
    first = next((c.layer for c in convs[1:] if c.weight.shape[0] != convs[0].weight.shape[0]), convs[-1].layer)
    raise ModelLoadError(
        f"{first.describe()} is not understood: the graph is neither an RRDBNet (6 + 15 x blocks convolutions, two "
        f"nearest x2 resizes; this one has {len(convs)} convolutions) nor an SRVGGNetCompact (a pixel-shuffle tail)"
    )


def _srvgg(graph: NcnnGraph, convs: list[Conv]) -> tuple[ArchConfig, dict[str, torch.Tensor]]:
    shuffle = next(layer for layer in graph.layers if layer.kind == "PixelShuffle")
    scale = int(shuffle.get(0, 1))
    num_feat = convs[0].weight.shape[0]
    prelus = [graph.slopes[layer.name] for layer in graph.layers if layer.kind == "PReLU"]
    relus = [layer for layer in graph.layers if layer.kind == "ReLU"]
    fused = [c.activation for c in convs[:-1]]
    if len(prelus) == len(convs) - 1:
        act_type = "prelu"
    elif len(relus) == len(convs) - 1 and all(not layer.get(0, 0.0) for layer in relus):
        act_type = "relu"
    elif all(a == ACT_RELU for a in fused) and all(not c.slope for c in convs[:-1]):
        act_type = "relu"
    elif all(a == ACT_LEAKY and abs(c.slope - 0.1) < 1e-6 for a, c in zip(fused, convs[:-1], strict=True)):
        act_type = "leakyrelu"
    else:
        raise ModelLoadError(
            f"{convs[0].layer.describe()} is not understood: an SRVGGNetCompact needs one PReLU, ReLU or "
            "LeakyReLU(0.1) after every convolution but the last"
        )
    out_ch = convs[-1].weight.shape[0] // (scale * scale)
    config = ArchConfig("srvgg", scale, {"num_feat": num_feat, "num_conv": len(convs) - 2, "act_type": act_type,
                                         "num_in_ch": convs[0].weight.shape[1], "num_out_ch": out_ch})
    state: dict[str, torch.Tensor] = {}
    for i, conv in enumerate(convs):
        state[f"body.{2 * i}.weight"] = conv.weight
        if conv.bias is not None:
            state[f"body.{2 * i}.bias"] = conv.bias
        if act_type == "prelu" and i < len(prelus):
            state[f"body.{2 * i + 1}.weight"] = prelus[i]
    return config, state


def _rrdb_names(num_block: int) -> Iterator[str]:
    yield "conv_first"
    for block in range(num_block):
        for rdb in (1, 2, 3):
            for conv in range(1, 6):
                yield f"body.{block}.rdb{rdb}.conv{conv}"
    yield from ("conv_body", "conv_up1", "conv_up2", "conv_hr", "conv_last")


#: the RRDBNet convolutions followed by LeakyReLU(0.2) (in the graph: fused into the convolution)
_RRDB_LEAKY = ("conv1", "conv2", "conv3", "conv4", "conv_up1", "conv_up2", "conv_hr")


def _rrdbnet(graph: NcnnGraph, convs: list[Conv]) -> tuple[ArchConfig, dict[str, torch.Tensor]]:
    num_block = (len(convs) - 6) // 15
    reorgs = [layer for layer in graph.layers if layer.kind == "Reorg"]
    scale = 2 if reorgs else 4
    if reorgs and (len(reorgs) != 1 or reorgs[0].get(0, 1) != 2):
        raise ModelLoadError(f"{reorgs[-1].describe()} is not understood: an RRDBNet x2 folds 2x2 pixels once")
    folded = 4 if scale == 2 else 1
    first = convs[0].weight
    if first.shape[1] % folded:
        raise ModelLoadError(f"{convs[0].layer.describe()}: {first.shape[1]} inputs do not fold 2x2 pixels")
    if reorgs and int(reorgs[0].get(1, 0)) == 0:  # Reorg mode 0 puts the pixel offset first; ours puts it last
        c = first.shape[1] // 4
        first = first.view(first.shape[0], 4, c, *first.shape[2:]).transpose(1, 2).reshape_as(first)
    config = ArchConfig("rrdbnet", scale, {"num_feat": first.shape[0], "num_block": num_block,
                                           "num_grow_ch": convs[1].weight.shape[0],
                                           "num_in_ch": first.shape[1] // folded,
                                           "num_out_ch": convs[-1].weight.shape[0]})
    state: dict[str, torch.Tensor] = {}
    for name, conv in zip(_rrdb_names(num_block), convs, strict=True):
        leaky = name.rsplit(".", 1)[-1] in _RRDB_LEAKY
        if conv.activation != (ACT_LEAKY if leaky else ACT_NONE) or (leaky and abs(conv.slope - 0.2) > 1e-6):
            raise ModelLoadError(
                f"{conv.layer.describe()} is not understood: as RRDBNet's {name} it should "
                f"{'end in LeakyReLU(0.2)' if leaky else 'have no activation'}"
            )
        state[f"{name}.weight"] = first if name == "conv_first" else conv.weight
        if conv.bias is None:
            raise ModelLoadError(f"{conv.layer.describe()} is not understood: RRDBNet's {name} has a bias")
        state[f"{name}.bias"] = conv.bias
    return config, state


def _load_named(model: torch.nn.Module, state: dict[str, torch.Tensor], graph: NcnnGraph) -> None:
    """Load strictly; a shape that does not fit is named by the graph layer it came from."""
    expected = model.state_dict()
    for name, tensor in state.items():
        if name not in expected or expected[name].shape != tensor.shape:
            wanted = tuple(expected[name].shape) if name in expected else "missing"
            raise ModelLoadError(
                f"{_source_layer(graph, tensor)} is not understood: its weights {tuple(tensor.shape)} do not fit the "
                f"network its other layers describe ({name} {wanted})"
            )
    missing = sorted(set(expected) - set(state))
    if missing:
        raise ModelLoadError(f"the graph has no weights for {', '.join(missing[:3])}")
    model.load_state_dict(state, strict=True)


def _source_layer(graph: NcnnGraph, tensor: torch.Tensor) -> str:
    for conv in graph.convs.values():
        if tensor is conv.weight or tensor is conv.bias:
            return conv.layer.describe()
    for layer in graph.layers:
        if layer.name in graph.slopes and graph.slopes[layer.name] is tensor:
            return layer.describe()
    return "a layer"


def _verify(graph: NcnnGraph, model: torch.nn.Module, config: ArchConfig, param: Path) -> None:
    """Both forwards on one small random input must agree; otherwise the wiring is not the family's."""
    generator = torch.Generator().manual_seed(0)
    channels = config.kwargs["num_in_ch"]
    x = torch.rand(1, channels, VERIFY_SIZE, VERIFY_SIZE, generator=generator)
    model.eval()
    with torch.no_grad():
        ours, theirs = model(x), graph.forward(x)
    if ours.shape != theirs.shape:
        raise ModelLoadError(
            f"{param}: read as {config.arch} x{config.scale}, but the graph's output is {tuple(theirs.shape)}, "
            f"not {tuple(ours.shape)}: its wiring is not understood"
        )
    difference = float((ours - theirs).abs().max())
    scale = max(1.0, float(theirs.abs().max()))
    if not difference <= VERIFY_TOLERANCE * scale:
        raise ModelLoadError(
            f"{param}: read as {config.arch} x{config.scale}, but that network differs from the graph by {difference:.3g} "
            "on a test input: its wiring is not understood"
        )
