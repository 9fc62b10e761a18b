"""JDSR's networks: the sectioned target, the soft-label generator, the peer and the frozen stage-1 encoder.

The target is a plain registry architecture; ``SectionedTarget`` adds the training-only section heads around
it as one module, so one DDP wrapper covers every parameter its loss touches. The deployed network (what
EMA averages and the checkpoints hold) is ``SectionedTarget.net``: the same tensors as a plain run.

Heads and labels start from the image (issue 30): a network without an image skip of its own (IMDN, FSRCNN,
SPAN, EDSR, RCAN, RRDBNet: ``trace.base`` is None) gets the bilinear ×s upsampled LR as the heads' and the
generator's base, during training only, so their freshly initialised residuals already output the bilinear
image instead of black (or the dataset mean). This is the port's ``PAN_MSD2`` layout (its heads and labels add
the ILR) made general; it costs one interpolation per step, changes nothing the checkpoints hold, and needs
no warm-up schedule. For a network that maps its tails through ``denormalize`` (mean shift) the base is
the upsampled LR minus ``denormalize(0)``, so a zero residual is exactly the bilinear image there too.
The last conv of every head and generator tail starts at 1 % of its default init, bias zero
(``start_from_the_image``): with PyTorch's default init the residuals alone put fresh heads at 12–15 dB and
labels at 17–19 dB on Set5 crops (imdn ×4) against 28.7 dB for the bilinear image, which they now start
within a few hundredths of a dB of. Not exactly zero: a zero last conv would cut the label term off from the
backbone (and the meta gradient off entirely) until the first real step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from jdsr_cli.archs import REGISTRY
from jdsr_cli.archs.base import SectionTrace, SRNet
from jdsr_cli.archs.registry import ArchConfig
from jdsr_cli.archs.sections import LabelGenerator, SectionHeads
from jdsr_cli.checkpoints.resolve import resolve_model
from jdsr_cli.errors import UsageError

if TYPE_CHECKING:
    from jdsr_cli.checkpoints.load import LoadedModel

TraceTuple = tuple[list[torch.Tensor], torch.Tensor, list[torch.Tensor], "torch.Tensor | None"]


class SectionedTarget(nn.Module):
    """The target network ``net`` and one reconstruction head per non-final section.

    ``forward(lr)`` returns ``(outputs, head, sections, base)``: the section outputs ``[out_1 .. out_K]``
    (``out_K`` is ``net(lr)``) and the trace the label generator reads (a tuple, which DDP passes through).
    """

    def __init__(self, net: SRNet, sections: int) -> None:
        super().__init__()
        if net.num_body_units < sections:
            raise UsageError(f"[jdsr] sections = {sections}: {type(net).__name__} has only {net.num_body_units} "
                             "body blocks to split")
        _check_feature_resolution(net, sections)
        self.net = net
        self.heads = SectionHeads(net, sections)
        start_from_the_image(net, self.heads.heads)

    def forward(self, x: torch.Tensor) -> TraceTuple:
        trace = self.net.section_trace(x, self.heads.num_sections)
        if trace.base is None:
            trace = SectionTrace(trace.head, trace.sections, image_base(self.net, x), trace.output)
        return self.heads(trace), trace.head, trace.sections, trace.base


def _check_feature_resolution(net: SRNet, sections: int) -> None:
    """The heads upscale section features by the net's scale: refuse, in one line, a net whose body runs at
    another resolution than its input (RRDBNet ×2 pixel-unshuffles its input first), found by a 16×16 probe."""
    probe = torch.zeros(1, net.in_channels, 16, 16)
    with torch.no_grad():
        trace = net.section_trace(probe, sections)
    if tuple(trace.sections[0].shape[-2:]) != (16, 16):
        height, width = trace.sections[0].shape[-2:]
        raise UsageError(f"--method jdsr: {type(net).__name__} ×{net.scale} cannot be sectioned, its body runs at "
                         f"{height}×{width} for a 16×16 input and the section heads upscale by {net.scale}; "
                         "train it with another method or at another scale")


def image_base(net: SRNet, lr: torch.Tensor) -> torch.Tensor | None:
    """The training-only image the heads and the label generator add to their tails' outputs when the network
    has no image skip: bilinear ×s of the LR, less what ``denormalize`` adds to a zero tail output (the mean
    shift of EDSR/RCAN/SPAN). None when input and output channels differ (no image to start from)."""
    if net.in_channels != net.out_channels:
        return None
    base = F.interpolate(lr, scale_factor=net.scale, mode="bilinear", align_corners=False)
    transform = getattr(net, "denormalize", None)
    if transform is not None:
        base = base - transform(lr.new_zeros(1, net.out_channels, 1, 1))
    return base


def as_trace(parts: TraceTuple, detach: bool) -> SectionTrace:
    """The generator's input from a ``SectionedTarget`` output; detached, labels do not reach the target."""
    outputs, head, sections, base = parts

    def cut(t: torch.Tensor | None) -> torch.Tensor | None:
        return t.detach() if detach and t is not None else t

    return SectionTrace(cut(head), [cut(f) for f in sections], cut(base), cut(outputs[-1]))  # type: ignore[arg-type]


def label_generator(net: SRNet, sections: int) -> LabelGenerator:
    generator = LabelGenerator.for_model(net, sections)
    start_from_the_image(net, generator.tails)
    return generator


TAIL_INIT_GAIN = 0.01  # the last conv of each head and generator tail, relative to PyTorch's default init


def start_from_the_image(net: SRNet, tails: nn.ModuleList) -> None:
    """Shrink the last conv of each reconstruction tail to ``TAIL_INIT_GAIN`` of its init and zero its bias,
    so a fresh head or label is its base (the image) up to a small residual. Left as initialised when there
    is no image base (input and output channels differ)."""
    if net.in_channels != net.out_channels:
        return
    with torch.no_grad():
        for tail in tails:
            last = [m for m in tail.modules() if isinstance(m, nn.Conv2d)][-1]
            last.weight.mul_(TAIL_INIT_GAIN)
            if last.bias is not None:
                last.bias.zero_()


def build_peer(arch: str, preset: str, scale: int) -> tuple[nn.Module, ArchConfig]:
    """The peer fed the superior LR (docs/design/jdsr-method.md §3.1): by default the 2-block EDSR, ~0.2M parameters."""
    try:
        spec = REGISTRY.get(arch)
    except UsageError as error:
        raise UsageError(f"[jdsr] peer_arch: {error}") from None
    if spec.direction != "up":
        raise UsageError(f"[jdsr] peer_arch = {arch!r} is a downscaler; the peer is an upscaler")
    try:
        kwargs = spec.preset_kwargs(preset or None)
    except UsageError as error:
        raise UsageError(f"[jdsr] peer_preset: {error}") from None
    config = ArchConfig(arch, scale, kwargs)
    return REGISTRY.build(config), config


def load_encoder(spec: str, scale: int) -> LoadedModel:
    """The frozen stage-1 encoder: ``spec`` (a checkpoint, hf:// or bundled name), or the bundled
    ``slr-down-x<scale>``; it must downscale by the run's scale."""
    loaded = resolve_model(spec or None, scale=scale, role="downscale", option="[jdsr] encoder")
    if loaded.config.arch != "slr-encoder" or loaded.config.scale != scale:
        raise UsageError(f"[jdsr] encoder = {spec or loaded.name!r}: {loaded.name} is a {loaded.config.arch} "
                         f"×{loaded.config.scale}; the peer needs a superior-LR encoder ×{scale} "
                         f"(e.g. slr-down-x{scale}, or a run of jdsr train --method superior-lr)")
    return loaded
