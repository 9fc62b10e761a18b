"""SRVGGNetCompact (Wang et al., Real-ESRGAN, 2021): the compact VGG-style net of Real-ESRGAN's CPU models.

``body`` is one flat list with the official parameter names: conv3×3 (in→nf), activation, then ``num_conv``
× [conv3×3 (nf→nf), activation], then conv3×3 (nf→out·s²); the output is PixelShuffle(s) of that plus the
nearest-neighbour ×s upsampled input. Input [0, 1], no mean shift. ``realesr-general-x4v3.pth`` is 64 features,
32 convs, PReLU; ``realesr-animevideov3.pth`` 64 features, 16 convs.

Taps: ``head`` = the first activation, ``body.i`` = the activation after body conv i, ``body_tail`` = the last
of those. Sections run over the ``num_conv`` body convs; base = the nearest-upsampled input.

Detection reads the PReLU layout (every released model uses it): an activation without parameters leaves no
trace in a state dict, so ReLU/LeakyReLU files are not recognised.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from jdsr_cli.archs.common import SectionedNet, conv3x3, matches, shape_of, split_pixelshuffle
from jdsr_cli.archs.registry import ArchSpec, SizeRequirement

ACTIVATIONS = ("prelu", "relu", "leakyrelu")


def _activation(kind: str, channels: int) -> nn.Module:
    if kind == "prelu":
        return nn.PReLU(num_parameters=channels)
    if kind == "relu":
        return nn.ReLU()
    if kind == "leakyrelu":
        return nn.LeakyReLU(0.1)
    raise ValueError(f"act_type {kind!r}: choose {', '.join(ACTIVATIONS)}")


class SRVGGNetCompact(SectionedNet):
    def __init__(self, scale: int = 4, num_feat: int = 64, num_conv: int = 16, act_type: str = "prelu",
                 num_in_ch: int = 3, num_out_ch: int = 3) -> None:
        super().__init__(scale, num_in_ch, num_out_ch, num_feat, num_conv)
        if num_conv < 1:
            raise ValueError("SRVGGNetCompact needs at least one body conv")
        layers: list[nn.Module] = [conv3x3(num_in_ch, num_feat), _activation(act_type, num_feat)]
        for _ in range(num_conv):
            layers += [conv3x3(num_feat, num_feat), _activation(act_type, num_feat)]
        layers.append(conv3x3(num_feat, num_out_ch * self.scale * self.scale))
        self.body = nn.ModuleList(layers)
        self.upsampler = nn.PixelShuffle(self.scale)

    def _activation_after(self, unit: int) -> nn.Module:
        """The activation that closes body conv ``unit`` (unit -1: the first conv)."""
        return self.body[2 * unit + 3]

    def feature_taps(self) -> dict[str, nn.Module]:
        taps: dict[str, nn.Module] = {"head": self.body[1]}
        taps.update({f"body.{i}": self._activation_after(i) for i in range(self.num_body_units)})
        taps["body_tail"] = self._activation_after(self.num_body_units - 1)
        return taps

    def _run(self, x: torch.Tensor, record: frozenset[int]):
        head = self.body[1](self.body[0](x))
        feat, recorded = head, []
        for i in range(self.num_body_units):
            feat = self.body[2 * i + 3](self.body[2 * i + 2](feat))
            if i in record:
                recorded.append(feat)
        base = F.interpolate(x, scale_factor=self.scale, mode="nearest")
        return head, recorded, feat, base, self.upsampler(self.body[-1](feat)) + base


def build(scale: int, **kwargs: Any) -> SRVGGNetCompact:
    return SRVGGNetCompact(scale=scale, **kwargs)


def detect(state_dict: Mapping[str, torch.Tensor]) -> dict[str, Any] | None:
    first = shape_of(state_dict, "body.0.weight")
    prelu = shape_of(state_dict, "body.1.weight")
    if first is None or len(first) != 4 or prelu is None or len(prelu) != 1:
        return None
    indices = {int(k.split(".")[1]) for k in state_dict if k.startswith("body.") and k.split(".")[1].isdigit()}
    last = max(indices)
    if last < 4 or last % 2:
        return None
    tail = shape_of(state_dict, f"body.{last}.weight")
    split = split_pixelshuffle(tail[0], SPEC.scales, [first[1]]) if tail else None
    if split is None:
        return None
    num_out_ch, scale = split
    kwargs = {"num_feat": first[0], "num_conv": (last - 2) // 2, "act_type": "prelu", "num_in_ch": first[1],
              "num_out_ch": num_out_ch}
    return {"scale": scale, **kwargs} if matches(build, {"scale": scale, **kwargs}, state_dict) else None


SPEC = ArchSpec(
    name="srvgg",
    family="Real-ESRGAN SRVGGNetCompact (realesr-general-x4v3, realesr-animevideov3)",
    build=build,
    detect=detect,
    presets={
        "general-v3": {"num_feat": 64, "num_conv": 32},  # realesr-general-x4v3
        "animevideo-v3": {"num_feat": 64, "num_conv": 16},  # realesr-animevideov3
    },
    scales=(2, 3, 4),
    # fp16: Real-ESRGAN runs these models in fp16 by default; [0, 1] input, no normalisation. bf16: same range.
    supports_fp16=True,
    supports_bf16=True,
    size=SizeRequirement(),
    summary="SRVGGNetCompact: Real-ESRGAN's compact plain-conv net (PReLU), pixel-shuffle tail, nearest skip.",
    reference="X. Wang, L. Xie, C. Dong, Y. Shan, 'Real-ESRGAN: Training Real-World Blind Super-Resolution with "
    "Pure Synthetic Data', ICCV Workshops 2021, arXiv:2107.10833 (SRVGGNetCompact from its repository).",
)
