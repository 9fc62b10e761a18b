"""Training-only modules of JDSR's internal self-distillation (docs/design/jdsr-method.md §3.2–§3.4, §12).

``SectionHeads`` gives every non-final section of a network an auxiliary reconstruction head;
``LabelGenerator`` builds the soft labels for those heads by progressive backward fusion. Neither
registers the network as a submodule: their state dicts hold only their own weights, and the deployed
network (its ``forward`` and its state dict) is unchanged.

Feature width: ``model.section_channels`` (the feature width, or FSRCNN's shrunk space where its sections
live). Output range: head outputs pass through the network's
``denormalize`` when it has one (EDSR/RCAN undo their mean shift, as their own tails do), then the
trace's image skip ``base`` is added when there is one (PAN's ILR).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from jdsr_cli.archs.base import SectionTrace, SRNet
from jdsr_cli.archs.common import conv1x1, reconstruction_head

DEFAULT_NUM_SECTIONS = 4

OutputTransform = Callable[[torch.Tensor], torch.Tensor]


def default_num_sections(model: SRNet) -> int:
    """4 sections (JDSR), or one per body unit when the body is shorter (e.g. the 2-block EDSR peer)."""
    return min(DEFAULT_NUM_SECTIONS, model.num_body_units)


def _finish(y: torch.Tensor, transform: OutputTransform | None, base: torch.Tensor | None) -> torch.Tensor:
    if transform is not None:
        y = transform(y)
    return y if base is None else y + base


class SectionHeads(nn.Module):
    """One reconstruction head per non-final section: out_k = head_k(f0 + f_k) (+ base), k = 1..K-1.

    ``forward(x)`` runs ``model.section_trace(x, K)`` and returns ``[out_1, .., out_{K-1}, output]``;
    ``forward(trace)`` does the same from a trace already computed. Gradients flow into the model.
    """

    def __init__(self, model: SRNet, num_sections: int | None = None) -> None:
        super().__init__()
        k = default_num_sections(model) if num_sections is None else int(num_sections)
        if not 1 <= k <= model.num_body_units:
            raise ValueError(
                f"cannot split {type(model).__name__}'s {model.num_body_units} body units into {k} sections"
            )
        self.num_sections = k
        self.channels = model.section_channels
        self.scale = int(model.scale)
        self.heads = nn.ModuleList(
            reconstruction_head(self.channels, model.out_channels, self.scale) for _ in range(k - 1)
        )
        # a plain attribute, deliberately not a submodule (see the module docstring)
        object.__setattr__(self, "_model", model)

    @property
    def model(self) -> SRNet:
        return self._model

    def trace(self, x: torch.Tensor) -> SectionTrace:
        return self._model.section_trace(x, self.num_sections)

    def forward(self, x: torch.Tensor | SectionTrace) -> list[torch.Tensor]:
        trace = x if isinstance(x, SectionTrace) else self.trace(x)
        if len(trace.sections) != self.num_sections:
            raise ValueError(f"trace has {len(trace.sections)} sections, heads expect {self.num_sections}")
        transform = getattr(self._model, "denormalize", None)
        outs = [
            _finish(head(trace.head + feat), transform, trace.base)
            for head, feat in zip(self.heads, trace.sections[:-1], strict=True)
        ]
        outs.append(trace.output)
        return outs


class LabelGenerator(nn.Module):
    """Progressive backward fusion soft-label generator (JDSR ``label_generator``, docs/design/jdsr-method.md §3.4).

    With g_K = f_K and, for k = K-1 .. 1,
    ``g_k = concat(ReLU(top_k(g_{k+1})), ReLU(lateral_k(f_k))) + f0`` (1×1 convs C→C/2) and
    ``y_k = tail_k(g_k) (+ base)``, tail_k = conv3×3 (C→C) → conv3×3 (C→out·s²) → PixelShuffle(s).
    Returns ``[y_1, .., y_{K-1}]``. Padding 1 everywhere (the port's valid-conv tails are a bug).
    ``output_transform`` maps tail outputs to the output range (pass ``model.denormalize`` for
    EDSR/RCAN; ``for_model`` does it for you). It is a plain attribute, not a submodule.
    """

    def __init__(
        self,
        channels: int,
        scale: int,
        num_sections: int = DEFAULT_NUM_SECTIONS,
        out_channels: int = 3,
        output_transform: OutputTransform | None = None,
    ) -> None:
        super().__init__()
        if num_sections < 2:
            raise ValueError("the label generator needs at least 2 sections")
        self.channels = int(channels)
        self.scale = int(scale)
        self.num_sections = int(num_sections)
        top_ch = self.channels // 2
        lateral_ch = self.channels - top_ch
        n = self.num_sections - 1
        # index k-1 holds the modules producing g_k / y_k
        self.top = nn.ModuleList(conv1x1(self.channels, top_ch) for _ in range(n))
        self.lateral = nn.ModuleList(conv1x1(self.channels, lateral_ch) for _ in range(n))
        self.tails = nn.ModuleList(
            reconstruction_head(self.channels, out_channels, self.scale) for _ in range(n)
        )
        self.relu = nn.ReLU()
        object.__setattr__(self, "output_transform", output_transform)

    @classmethod
    def for_model(cls, model: SRNet, num_sections: int | None = None) -> LabelGenerator:
        k = default_num_sections(model) if num_sections is None else int(num_sections)
        return cls(
            model.section_channels,
            model.scale,
            k,
            model.out_channels,
            output_transform=getattr(model, "denormalize", None),
        )

    def forward(self, trace: SectionTrace) -> list[torch.Tensor]:
        feats = trace.sections
        if len(feats) != self.num_sections:
            raise ValueError(f"trace has {len(feats)} sections, the generator expects {self.num_sections}")
        f0 = trace.head
        g = feats[-1]
        labels: list[torch.Tensor] = []
        for k in range(self.num_sections - 1, 0, -1):  # k = K-1 .. 1
            i = k - 1
            g = torch.cat([self.relu(self.top[i](g)), self.relu(self.lateral[i](feats[i]))], dim=1) + f0
            labels.append(_finish(self.tails[i](g), self.output_transform, trace.base))
        labels.reverse()
        return labels
