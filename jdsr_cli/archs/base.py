"""The interface every super-resolution network in the registry implements.

Input and output are N×C×H×W float tensors with values in [0, 1] (the output is not clamped).
Networks expose **feature taps** (named modules whose outputs distillation reads through forward hooks)
and can run **sectioned**: the body split into contiguous sections whose outputs feed training-only
reconstruction heads (``jdsr_cli.archs.sections``). Sectioning never changes ``forward`` or the
deployed state dict: the heads live in a separate module.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class SectionTrace:
    """What one sectioned forward pass produced.

    ``head``: the features every section head adds to its section output (f0, e.g. the first conv).
    ``sections``: the body features at the end of each section, f1..fK (before any global skip).
    ``base``: the image-space skip the final output adds (e.g. bilinear-upsampled LR), or None.
    ``output``: the ordinary final output, identical to ``forward(x)``.
    """

    head: torch.Tensor
    sections: list[torch.Tensor]
    base: torch.Tensor | None
    output: torch.Tensor


class SRNet(nn.Module):
    """Base class: every network states its scale and channel counts here, so no caller guesses them.

    ``feature_channels``: the body's width (what the tiler's memory estimate and feature distillation read);
    ``num_body_units``: how many units the body holds (blocks or groups), which sections split contiguously.
    """

    def __init__(self, scale: int = 1, in_channels: int = 3, out_channels: int = 3, feature_channels: int = 64,
                 num_body_units: int = 1) -> None:
        super().__init__()
        self.scale = int(scale)
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.feature_channels = int(feature_channels)
        self.num_body_units = int(num_body_units)

    @property
    def section_channels(self) -> int:
        """The width of a section's output: the feature width unless the body narrows it (FSRCNN's shrinking)."""
        return self.feature_channels

    def feature_taps(self) -> dict[str, nn.Module]:
        """Tap name -> module whose forward output is that feature ('head', 'body.i', 'body_tail')."""
        raise NotImplementedError

    def section_trace(self, x: torch.Tensor, num_sections: int) -> SectionTrace:
        """Run forward, recording the body features at ``num_sections`` contiguous section ends."""
        raise NotImplementedError


def section_boundaries(num_units: int, num_sections: int) -> list[int]:
    """Indices (exclusive ends) splitting ``num_units`` body units into near-equal sections.

    6 units in 4 sections -> [1, 3, 5, 6] sizes (1, 2, 2, 1): the larger sections sit in the middle,
    the reconstruction of the JDSR note for IMDN's six blocks.
    """
    if not 1 <= num_sections <= num_units:
        raise ValueError(f"cannot split {num_units} body units into {num_sections} sections")
    base, extra = divmod(num_units, num_sections)
    sizes = [base] * num_sections
    # hand out the remainder from the middle outwards
    order = sorted(range(num_sections), key=lambda i: (abs(i - (num_sections - 1) / 2), i))
    for i in order[:extra]:
        sizes[i] += 1
    ends, total = [], 0
    for size in sizes:
        total += size
        ends.append(total)
    return ends
