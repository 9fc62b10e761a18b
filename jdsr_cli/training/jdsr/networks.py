"""JDSR's networks: the sectioned target, the soft-label generator, the peer and the frozen stage-1 encoder.

The target is a plain registry architecture; ``SectionedTarget`` adds the training-only section heads around
it as one module, so one DDP wrapper covers every parameter its loss touches. The deployed network (what
EMA averages and the checkpoints hold) is ``SectionedTarget.net``: the same tensors as a plain run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from jdsr_cli.archs.base import SectionTrace, SRNet
from jdsr_cli.archs.registry import ArchConfig
from jdsr_cli.archs.sections import LabelGenerator, SectionHeads
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
        self.net = net
        self.heads = SectionHeads(net, sections)

    def forward(self, x: torch.Tensor) -> TraceTuple:
        trace = self.net.section_trace(x, self.heads.num_sections)
        return self.heads(trace), trace.head, trace.sections, trace.base


def as_trace(parts: TraceTuple, detach: bool) -> SectionTrace:
    """The generator's input from a ``SectionedTarget`` output; detached, labels do not reach the target."""
    outputs, head, sections, base = parts

    def cut(t: torch.Tensor | None) -> torch.Tensor | None:
        return t.detach() if detach and t is not None else t

    return SectionTrace(cut(head), [cut(f) for f in sections], cut(base), cut(outputs[-1]))  # type: ignore[arg-type]


def label_generator(net: SRNet, sections: int) -> LabelGenerator:
    return LabelGenerator.for_model(net, sections)


def build_peer(arch: str, preset: str, scale: int) -> tuple[nn.Module, ArchConfig]:
    """The peer fed the superior LR (jdsr-method.md §3.1): by default the 2-block EDSR, ~0.2M parameters."""
    from jdsr_cli.archs import REGISTRY

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
    from jdsr_cli.checkpoints.resolve import resolve_model

    loaded = resolve_model(spec or None, scale=scale, role="downscale", option="[jdsr] encoder")
    if loaded.config.arch != "slr-encoder" or loaded.config.scale != scale:
        raise UsageError(f"[jdsr] encoder = {spec or loaded.name!r}: {loaded.name} is a {loaded.config.arch} "
                         f"×{loaded.config.scale}; the peer needs a superior-LR encoder ×{scale} "
                         f"(e.g. slr-down-x{scale}, or a run of jdsr train --method superior-lr)")
    return loaded
