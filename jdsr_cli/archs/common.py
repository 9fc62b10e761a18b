"""Building blocks and detection helpers shared by the architectures in this package.

Blocks keep the parameter names of the public implementations our detectors target (BasicSR for
EDSR/RCAN), so third-party state dicts load with ``strict=True``. No block uses an in-place operation on
a tensor that a feature tap or a section trace hands out, so captured features stay valid for autograd.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from jdsr_cli.archs.base import SectionTrace, SRNet, section_boundaries

#: DIV2K RGB mean used by EDSR / RCAN (and BasicSR) for the mean shift.
DIV2K_RGB_MEAN: tuple[float, float, float] = (0.4488, 0.4371, 0.4040)


def conv3x3(in_ch: int, out_ch: int, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, 3, 1, 1, bias=bias)


def conv1x1(in_ch: int, out_ch: int, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, 1, 1, 0, bias=bias)


def channel_mean(rgb_mean: Sequence[float], channels: int) -> torch.Tensor:
    """The per-channel mean as a 1×C×1×1 tensor; a 3-value RGB mean is averaged for other channel counts."""
    values = [float(v) for v in rgb_mean]
    if len(values) != channels:
        values = [sum(values) / len(values)] * channels
    return torch.tensor(values, dtype=torch.float32).view(1, channels, 1, 1)


class MeanShiftMixin:
    """EDSR-style normalisation ``(x - mean) * img_range`` and its inverse, held in non-persistent buffers.

    The buffers follow ``.to(device/dtype)`` but never enter the state dict (BasicSR stores the mean as a
    plain attribute, so its checkpoints contain no mean either).
    """

    img_range: float

    def _init_mean_shift(
        self, img_range: float, rgb_mean: Sequence[float], in_ch: int, out_ch: int
    ) -> None:
        self.img_range = float(img_range)
        self.register_buffer("mean_in", channel_mean(rgb_mean, in_ch), persistent=False)  # type: ignore[attr-defined]
        self.register_buffer("mean_out", channel_mean(rgb_mean, out_ch), persistent=False)  # type: ignore[attr-defined]

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean_in) * self.img_range  # type: ignore[attr-defined]

    def denormalize(self, y: torch.Tensor) -> torch.Tensor:
        return y / self.img_range + self.mean_out  # type: ignore[attr-defined]


class ResBlock(nn.Module):
    """EDSR residual block without batch norm (BasicSR ``ResidualBlockNoBN``: conv1, ReLU, conv2)."""

    def __init__(self, num_feat: int = 64, res_scale: float = 1.0) -> None:
        super().__init__()
        self.res_scale = float(res_scale)
        self.conv1 = conv3x3(num_feat, num_feat)
        self.conv2 = conv3x3(num_feat, num_feat)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.relu(self.conv1(x))) * self.res_scale


class Upsample(nn.Sequential):
    """EDSR sub-pixel upsampler (BasicSR ``Upsample``): (conv C→4C, PixelShuffle 2)×log2 s, or conv C→9C, PS 3."""

    def __init__(self, scale: int, num_feat: int) -> None:
        layers: list[nn.Module] = []
        if scale >= 2 and scale & (scale - 1) == 0:
            for _ in range(scale.bit_length() - 1):
                layers += [conv3x3(num_feat, 4 * num_feat), nn.PixelShuffle(2)]
        elif scale == 3:
            layers += [conv3x3(num_feat, 9 * num_feat), nn.PixelShuffle(3)]
        else:
            raise ValueError(f"scale {scale} is not supported (use 2^n or 3)")
        super().__init__(*layers)


class ChannelAttention(nn.Module):
    """RCAN channel attention (BasicSR names): global average pool → 1×1 squeeze → ReLU → 1×1 → sigmoid."""

    def __init__(self, num_feat: int, reduction: int = 16) -> None:
        super().__init__()
        squeezed = max(1, num_feat // reduction)
        self.attention = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            conv1x1(num_feat, squeezed),
            nn.ReLU(inplace=True),
            conv1x1(squeezed, num_feat),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.attention(x)


def reconstruction_head(channels: int, out_channels: int, scale: int) -> nn.Sequential:
    """JDSR auxiliary tail: conv3×3 (C→C) → conv3×3 (C→out·s²) → PixelShuffle(s), no activation."""
    return nn.Sequential(
        conv3x3(channels, channels),
        conv3x3(channels, out_channels * scale * scale),
        nn.PixelShuffle(scale),
    )


def run_blocks(
    blocks: Iterable[nn.Module], feat: torch.Tensor, record: frozenset[int]
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Apply body units in order; also return the outputs of the units whose index is in ``record``."""
    recorded = []
    for i, block in enumerate(blocks):
        feat = block(feat)
        if i in record:
            recorded.append(feat)
    return feat, recorded


class SectionedNet(SRNet):
    """Common ``forward``/``section_trace`` plumbing: both run the same ``_run`` so outputs are bitwise equal.

    Subclasses implement ``_run(x, record)`` that returns ``(head, recorded, body_tail, base, output)``:
    ``recorded`` holds the outputs of the body units whose indices are in ``record`` (in order),
    ``body_tail`` the feature that closes the body (the last section feature, before any global skip).
    """

    def denormalize(self, y: torch.Tensor) -> torch.Tensor:
        """Map a tail output from the network's internal range to the output range (identity by default)."""
        return y

    def _run(
        self, x: torch.Tensor, record: frozenset[int]
    ) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor, torch.Tensor | None, torch.Tensor]:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(x, frozenset())[-1]

    def section_trace(self, x: torch.Tensor, num_sections: int) -> SectionTrace:
        ends = section_boundaries(self.num_body_units, num_sections)
        head, recorded, body_tail, base, output = self._run(x, frozenset(e - 1 for e in ends[:-1]))
        return SectionTrace(head=head, sections=[*recorded, body_tail], base=base, output=output)


# ---------------------------------------------------------------------------------------------------
# detection helpers
# ---------------------------------------------------------------------------------------------------


def shape_of(state_dict: Mapping[str, Any], key: str) -> tuple[int, ...] | None:
    value = state_dict.get(key)
    shape = getattr(value, "shape", None)
    return tuple(int(d) for d in shape) if shape is not None else None


def seq_len(state_dict: Mapping[str, Any], prefix: str, start: int = 0) -> int:
    """How many consecutive indices ``prefix.<start>``, ``prefix.<start+1>``... have keys."""
    present = set()
    dotted = prefix + "."
    for key in state_dict:
        if key.startswith(dotted):
            head = key[len(dotted):].split(".", 1)[0]
            if head.isdigit():
                present.add(int(head))
    n = 0
    while start + n in present:
        n += 1
    return n


def expected_shapes(build: Callable[..., nn.Module], kwargs: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """Names and shapes of the state dict ``build(**kwargs)`` produces, built on the meta device (no memory)."""
    with torch.device("meta"):
        model = build(**kwargs)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def matches(
    build: Callable[..., nn.Module], kwargs: Mapping[str, Any], state_dict: Mapping[str, Any]
) -> bool:
    """True when ``build(**kwargs)`` has exactly the state dict's tensor names and shapes."""
    try:
        expected = expected_shapes(build, kwargs)
    except Exception:  # any kwargs the builder rejects simply mean "not this architecture"
        return False
    if set(expected) != set(state_dict):
        return False
    return all(shape_of(state_dict, k) == shape for k, shape in expected.items())


def split_pixelshuffle(
    out_channels: int, scales: Sequence[int], preferred: Sequence[int]
) -> tuple[int, int] | None:
    """Split a sub-pixel conv's output channels ``c·s²`` into ``(c, s)``, trying ``preferred`` c first."""
    for c in dict.fromkeys([*preferred, 3, 1]):
        if c <= 0:
            continue
        for s in scales:
            if c * s * s == out_channels:
                return c, s
    return None


def upsample_scale(state_dict: Mapping[str, Any], prefix: str, num_feat: int) -> int | None:
    """Scale of a BasicSR ``Upsample`` stored under ``prefix`` (convs at even indices)."""
    outs = []
    i = 0
    while (shape := shape_of(state_dict, f"{prefix}.{i}.weight")) is not None:
        outs.append(shape[0])
        i += 2
    if len(outs) == 1 and outs[0] == 9 * num_feat:
        return 3
    if outs and all(o == 4 * num_feat for o in outs):
        return 2 ** len(outs)
    return None
