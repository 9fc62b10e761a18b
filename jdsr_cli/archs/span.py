"""SPAN (Wan et al., CVPR Workshops 2024; NTIRE 2024 efficient-SR winner) with the official parameter names.

Every 3×3 conv is a ``Conv3XC``: in training, a 1×1 (c→2c) → 3×3 (2c→2c', unpadded, on a zero-padded input) →
1×1 (2c'→c') chain plus a 1×1 skip ``sk``; for inference these fold into one 3×3 ``eval_conv`` (exact: a linear
chain). Training runs the fold too, differentiably, so a step costs what a plain 3×3 conv net's does.
``conv_1`` → six SPAB blocks (three Conv3XC with SiLU between; out = (c3 + x) · (sigmoid(c3) − 0.5), the
parameter-free attention) → ``conv_2`` on the last block's output → ``conv_cat`` (1×1 over [conv_1 output,
conv_2 output, block 1 output, block 6's first activation]) → conv3×3 + PixelShuffle (``upsampler``). The
input is mean-shifted and scaled to 0–255; the output is used as is (the official code adds nothing back).

Two forms share one class: ``folded = False`` (the official training checkpoints: ``sk``, ``conv.0-2`` and the
derived ``eval_conv`` in every Conv3XC; ``eval_conv`` is refolded whenever the branch weights changed, so a
stale stored copy never matters) and ``folded = True`` (``eval_conv`` only: a plain 3×3 conv, what
``fold_span`` writes for deployment). ``detect`` tells them apart by the ``sk`` tensors.

Taps: ``head`` = conv_1, ``body.i`` = block i+1's output, ``body_tail`` = conv_2.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from jdsr_cli.archs.common import (
    DIV2K_RGB_MEAN,
    MeanShiftMixin,
    SectionedNet,
    conv1x1,
    conv3x3,
    matches,
    shape_of,
    split_pixelshuffle,
)
from jdsr_cli.archs.registry import ArchSpec, SizeRequirement

NUM_BLOCKS = 6  # the official network's block_1..block_6 (conv_cat reads blocks 1 and 6 by name)
GAIN = 2  # Conv3XC's expansion inside the training-form chain


class Conv3XC(nn.Module):
    """A re-parameterisable 3×3 conv: see the module docstring."""

    def __init__(self, c_in: int, c_out: int, folded: bool = False) -> None:
        super().__init__()
        self.folded = folded
        self.eval_conv = conv3x3(c_in, c_out)
        if folded:
            return
        self.eval_conv.weight.requires_grad_(False)
        self.eval_conv.bias.requires_grad_(False)
        self.sk = conv1x1(c_in, c_out)
        self.conv = nn.Sequential(conv1x1(c_in, c_in * GAIN), nn.Conv2d(c_in * GAIN, c_out * GAIN, 3),
                                  conv1x1(c_out * GAIN, c_out))
        self._folded_from: tuple[int, ...] | None = None
        self.register_state_dict_pre_hook(lambda module, *_: module.refold())

    def _branch_versions(self) -> tuple[int, ...]:
        tensors = [self.sk.weight, self.sk.bias, *(p for layer in self.conv for p in (layer.weight, layer.bias))]
        return tuple(x for t in tensors for x in (id(t), t._version))

    @torch.no_grad()
    def refold(self) -> None:
        """Write the training chain's exact single-conv equivalent into ``eval_conv`` (if the chain changed)."""
        if self.folded or self.sk.weight.is_meta:
            return
        versions = self._branch_versions()
        if versions == self._folded_from:
            return
        weight, bias = fold_chain(self.conv, self.sk)
        self.eval_conv.weight.copy_(weight)
        self.eval_conv.bias.copy_(bias)
        self._folded_from = versions

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.folded or not self.training:
            self.refold()
            return self.eval_conv(x)
        # Training: the same chain, run as its fold with gradients flowing through the fold (online
        # re-parameterisation, as OREPA, Hu et al. CVPR 2022). The function and the gradients of every branch
        # parameter are the chain's; the cost is one 3×3 conv instead of 4.4× its multiply-adds.
        weight, bias = fold_chain(self.conv, self.sk)
        return F.conv2d(x, weight, bias, padding=1)


def fold_chain(chain: nn.Sequential, skip: nn.Conv2d) -> tuple[torch.Tensor, torch.Tensor]:
    """1×1 → 3×3 (valid) → 1×1, plus a 1×1 skip, as one 3×3 conv with padding 1 (computed in float32).

    Zero padding before the first 1×1 makes its bias appear at the border too, so the fold is exact everywhere."""
    with torch.autocast(chain[0].weight.device.type, enabled=False):
        w1, b1 = chain[0].weight.float()[:, :, 0, 0], chain[0].bias.float()
        w2, b2 = chain[1].weight.float(), chain[1].bias.float()
        w3, b3 = chain[2].weight.float()[:, :, 0, 0], chain[2].bias.float()
        weight = torch.einsum("om,mnhw,ni->oihw", w3, w2, w1)
        bias = w3 @ (w2.sum((2, 3)) @ b1 + b2) + b3
        weight = weight + F.pad(skip.weight.float(), (1, 1, 1, 1))
        bias = bias + skip.bias.float()
    return weight.to(skip.weight.dtype).contiguous(), bias.to(skip.bias.dtype)


class SPAB(nn.Module):
    """Swift parameter-free attention block; ``out`` is an identity that makes the block's result a tap."""

    def __init__(self, channels: int, folded: bool = False) -> None:
        super().__init__()
        self.c1_r = Conv3XC(channels, channels, folded)
        self.c2_r = Conv3XC(channels, channels, folded)
        self.c3_r = Conv3XC(channels, channels, folded)
        self.out = nn.Identity()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the block's output, its first activation): the official SiLU is in place, so the second value the
        official block returns is already activated."""
        first = F.silu(self.c1_r(x))
        third = self.c3_r(F.silu(self.c2_r(first)))
        return self.out((third + x) * (torch.sigmoid(third) - 0.5)), first


class SPAN(MeanShiftMixin, SectionedNet):
    def __init__(self, scale: int = 4, feature_channels: int = 48, num_in_ch: int = 3, num_out_ch: int = 3,
                 img_range: float = 255.0, folded: bool = False) -> None:
        super().__init__(scale, num_in_ch, num_out_ch, feature_channels, NUM_BLOCKS)
        self._init_mean_shift(img_range, DIV2K_RGB_MEAN, num_in_ch, num_out_ch)
        self.conv_1 = Conv3XC(num_in_ch, feature_channels, folded)
        for i in range(1, NUM_BLOCKS + 1):
            setattr(self, f"block_{i}", SPAB(feature_channels, folded))
        self.conv_cat = conv1x1(feature_channels * 4, feature_channels)
        self.conv_2 = Conv3XC(feature_channels, feature_channels, folded)
        self.upsampler = nn.Sequential(conv3x3(feature_channels, num_out_ch * self.scale**2),
                                       nn.PixelShuffle(self.scale))

    def deployed_form(self) -> SPAN:
        """The folded network for inference and export (itself when already folded)."""
        return self if self.conv_1.folded else fold_span(self)

    def blocks(self) -> list[SPAB]:
        return [getattr(self, f"block_{i}") for i in range(1, NUM_BLOCKS + 1)]

    def feature_taps(self) -> dict[str, nn.Module]:
        taps: dict[str, nn.Module] = {"head": self.conv_1}
        taps.update({f"body.{i}": block.out for i, block in enumerate(self.blocks())})
        taps["body_tail"] = self.conv_2
        return taps

    def _run(self, x: torch.Tensor, record: frozenset[int]):
        head = self.conv_1(self.normalize(x))
        feat, recorded, outputs, first = head, [], [], head
        for i, block in enumerate(self.blocks()):
            feat, first = block(feat)
            outputs.append(feat)
            if i in record:
                recorded.append(feat)
        body_tail = self.conv_2(feat)
        out = self.conv_cat(torch.cat([head, body_tail, outputs[0], first], 1))
        return head, recorded, body_tail, None, self.upsampler(out)


def build(scale: int, **kwargs: Any) -> SPAN:
    return SPAN(scale=scale, **kwargs)


def fold_span(model: SPAN) -> SPAN:
    """The deployment form of a training-form SPAN: every Conv3XC replaced by its folded 3×3 (same output)."""
    folded = SPAN(scale=model.scale, feature_channels=model.feature_channels, num_in_ch=model.in_channels,
                  num_out_ch=model.out_channels, img_range=model.img_range, folded=True)
    folded.load_state_dict({k: v for k, v in model.state_dict().items() if k in folded.state_dict()})
    return folded


def detect(state_dict: Mapping[str, torch.Tensor]) -> dict[str, Any] | None:
    first = shape_of(state_dict, "conv_1.eval_conv.weight")
    tail = shape_of(state_dict, "upsampler.0.weight")
    if first is None or tail is None or "block_1.c1_r.eval_conv.weight" not in state_dict:
        return None
    split = split_pixelshuffle(tail[0], SPEC.scales, [first[1]])
    if split is None:
        return None
    num_out_ch, scale = split
    kwargs = {"feature_channels": first[0], "num_in_ch": first[1], "num_out_ch": num_out_ch,
              "folded": "conv_1.sk.weight" not in state_dict}
    return {"scale": scale, **kwargs} if matches(build, {"scale": scale, **kwargs}, state_dict) else None


SPEC = ArchSpec(
    name="span",
    family="SPAN (official layout; training form or folded)",
    build=build,
    detect=detect,
    presets={
        "default": {"feature_channels": 48},  # the official default (NTIRE 2024 entry: 48 at ×4)
        "small": {"feature_channels": 32},
    },
    scales=(2, 3, 4),
    # bf16: features on a 0-255 scale stay far inside bf16's range. fp16: the largest activations of a
    # 0-255 input through a few convs stay well under fp16's 65504 in the official models.
    supports_fp16=True,
    supports_bf16=True,
    size=SizeRequirement(),
    summary="SPAN: re-parameterisable convs with parameter-free attention (NTIRE 2024 efficient SR winner).",
    reference="C. Wan, H. Yu, Z. Li, Y. Chen, Y. Zou, Y. Liu, X. Yin, K. Zuo, 'Swift Parameter-free Attention "
    "Network for Efficient Super-Resolution', CVPR Workshops 2024, arXiv:2311.12770.",
)
