"""PAN (Zhao et al., ECCV Workshops 2020) with the official repository's parameter names.

``conv_first`` → ``SCPA_trunk`` (nb self-calibrated blocks with pixel attention) → ``trunk_conv`` → +
conv_first output → upsampling by nearest-neighbour interpolation (one ×s step for ×2/×3, two ×2 steps
for ×4), each step ``upconvN`` → pixel attention ``attN`` → LReLU → ``HRconvN`` → LReLU → ``conv_last``
→ + bilinear ×s upsampled LR (the ILR). Input is [0, 1] RGB with no mean shift (as in the official code).

Taps: ``head`` = conv_first, ``body.i`` = SCPA block i, ``body_tail`` = trunk_conv (before the skip).
Sections: f0 = conv_first output, f_k = SCPA outputs at the section ends, the last = trunk_conv output,
base = the ILR (this is JDSR's ``PAN_MSD2``, docs/design/jdsr-method.md §3.2).

Note: ×2 and ×3 models have identical state dicts (the scale only changes the interpolation), so
``detect`` cannot tell them apart; it reports ×2 (see ``jdsr_cli.checkpoints.recipe.matching_scales``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from jdsr_cli.archs.common import SectionedNet, conv1x1, conv3x3, matches, run_blocks, seq_len, shape_of
from jdsr_cli.archs.registry import ArchSpec, SizeRequirement


class PA(nn.Module):
    """Pixel attention: x · sigmoid(conv1×1(x))."""

    def __init__(self, nf: int) -> None:
        super().__init__()
        self.conv = conv1x1(nf, nf)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.conv(x))


class PAConv(nn.Module):
    """Pixel-attention convolution: k4(k3(x) · sigmoid(k2(x)))."""

    def __init__(self, nf: int, k_size: int = 3) -> None:
        super().__init__()
        pad = (k_size - 1) // 2
        self.k2 = conv1x1(nf, nf)
        self.k3 = nn.Conv2d(nf, nf, k_size, padding=pad, bias=False)
        self.k4 = nn.Conv2d(nf, nf, k_size, padding=pad, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.k4(self.k3(x) * torch.sigmoid(self.k2(x)))


class SCPA(nn.Module):
    """Self-calibrated block with pixel attention: two half-width branches, 1×1 fusion, residual."""

    def __init__(self, nf: int, reduction: int = 2) -> None:
        super().__init__()
        width = nf // reduction
        self.conv1_a = conv1x1(nf, width, bias=False)
        self.conv1_b = conv1x1(nf, width, bias=False)
        self.k1 = nn.Sequential(nn.Conv2d(width, width, 3, 1, 1, bias=False))
        self.PAConv = PAConv(width)
        self.conv3 = conv1x1(width * reduction, nf, bias=False)
        self.lrelu = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.lrelu(self.k1(self.lrelu(self.conv1_a(x))))
        b = self.lrelu(self.PAConv(self.lrelu(self.conv1_b(x))))
        return self.conv3(torch.cat([a, b], dim=1)) + x


class PAN(SectionedNet):
    def __init__(
        self,
        scale: int = 4,
        nf: int = 40,
        unf: int = 24,
        nb: int = 16,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
    ) -> None:
        super().__init__(scale, num_in_ch, num_out_ch, nf, nb)
        if scale not in (2, 3, 4):
            raise ValueError(f"PAN supports scales 2, 3 and 4, not {scale}")
        if nb < 1:
            raise ValueError("PAN needs at least one SCPA block")

        self.conv_first = conv3x3(num_in_ch, nf)
        self.SCPA_trunk = nn.Sequential(*(SCPA(nf) for _ in range(nb)))
        self.trunk_conv = conv3x3(nf, nf)
        self.upconv1 = conv3x3(nf, unf)
        self.att1 = PA(unf)
        self.HRconv1 = conv3x3(unf, unf)
        if self.scale == 4:
            self.upconv2 = conv3x3(unf, unf)
            self.att2 = PA(unf)
            self.HRconv2 = conv3x3(unf, unf)
        self.conv_last = conv3x3(unf, num_out_ch)
        self.lrelu = nn.LeakyReLU(0.2)

    def feature_taps(self) -> dict[str, nn.Module]:
        taps: dict[str, nn.Module] = {"head": self.conv_first}
        taps.update({f"body.{i}": block for i, block in enumerate(self.SCPA_trunk)})
        taps["body_tail"] = self.trunk_conv
        return taps

    def _up(self, fea: torch.Tensor, factor: int, upconv: nn.Module, att: nn.Module, hrconv: nn.Module):
        fea = upconv(F.interpolate(fea, scale_factor=factor, mode="nearest"))
        fea = self.lrelu(att(fea))
        return self.lrelu(hrconv(fea))

    def _run(self, x: torch.Tensor, record: frozenset[int]):
        head = self.conv_first(x)
        feat, recorded = run_blocks(self.SCPA_trunk, head, record)
        body_tail = self.trunk_conv(feat)
        fea = body_tail + head
        if self.scale == 4:
            fea = self._up(fea, 2, self.upconv1, self.att1, self.HRconv1)
            fea = self._up(fea, 2, self.upconv2, self.att2, self.HRconv2)
        else:
            fea = self._up(fea, self.scale, self.upconv1, self.att1, self.HRconv1)
        base = F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)
        y = self.conv_last(fea) + base
        return head, recorded, body_tail, base, y


def build(scale: int, **kwargs: Any) -> PAN:
    return PAN(scale=scale, **kwargs)


def detect(state_dict: Mapping[str, torch.Tensor]) -> dict[str, Any] | None:
    first = shape_of(state_dict, "conv_first.weight")
    upconv = shape_of(state_dict, "upconv1.weight")
    last = shape_of(state_dict, "conv_last.weight")
    if first is None or upconv is None or last is None or "SCPA_trunk.0.conv1_a.weight" not in state_dict:
        return None
    # ×2 and ×3 share one state dict; ×2 is reported (callers may override with a known scale).
    scale = 4 if "upconv2.weight" in state_dict else 2
    kwargs: dict[str, Any] = {
        "nf": first[0],
        "unf": upconv[0],
        "nb": seq_len(state_dict, "SCPA_trunk"),
        "num_in_ch": first[1],
        "num_out_ch": last[0],
    }
    if not matches(build, {"scale": scale, **kwargs}, state_dict):
        return None
    return {"scale": scale, **kwargs}


SPEC = ArchSpec(
    name="pan",
    family="PAN (official layout)",
    build=build,
    detect=detect,
    presets={
        "default": {"nf": 40, "unf": 24, "nb": 16},
        # a distillation student: 13,478 multiply-adds per output pixel at ×4, 0.30× imdn-x4's (115K parameters);
        # PAN's HR-resolution upsampler dominates at ×2, where it is 0.19× imdn-x2's
        "small": {"nf": 32, "unf": 16, "nb": 10},
    },
    scales=(2, 3, 4),
    # fp16: on. [0, 1] input without mean shift, 40-wide features, sigmoid gates everywhere: activations
    # stay small. bf16: fine range-wise; note the ILR skip is added in the compute dtype, so bf16 output
    # carries ~8 bits of mantissa (about the 8-bit output quantum).
    supports_fp16=True,
    supports_bf16=True,
    size=SizeRequirement(),
    summary="PAN: self-calibrated blocks with pixel attention, nearest-neighbour upsampling with pixel "
    "attention, bilinear image skip (official parameter names; 272K params at x4).",
    reference="H. Zhao, X. Kong, J. He, Y. Qiao, C. Dong, 'Efficient Image Super-Resolution Using Pixel "
    "Attention', ECCV Workshops (AIM) 2020, arXiv:2010.01073.",
)
