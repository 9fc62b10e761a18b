"""RRDBNet (Wang et al., ESRGAN, 2018) with BasicSR's parameter names, as Real-ESRGAN's ``.pth`` files use.

``conv_first`` → ``body`` (``num_block`` residual-in-residual dense blocks, each three 5-conv dense blocks
``rdb1..3`` scaled by 0.2) → ``conv_body`` → + conv_first output → two (nearest ×2 → ``conv_upN`` → LReLU)
steps → ``conv_hr`` → LReLU → ``conv_last``. ×2 models first fold 2×2 pixels into channels (pixel unshuffle,
so ``conv_first`` takes 4× the channels), as RealESRGAN_x2plus does; an odd-sized input is edge-padded to even
and the output cropped. Input [0, 1], no mean shift, no image skip.

Taps: ``head`` = conv_first, ``body.i`` = RRDB i, ``body_tail`` = conv_body (before the skip).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from jdsr_cli.archs.common import SectionedNet, conv3x3, matches, run_blocks, seq_len, shape_of
from jdsr_cli.archs.registry import ArchSpec, SizeRequirement

RESIDUAL_SCALE = 0.2


class DenseBlock(nn.Module):
    """Five 3×3 convs, each seeing the block input and every earlier output; 0.2-scaled residual."""

    def __init__(self, num_feat: int, num_grow_ch: int) -> None:
        super().__init__()
        for i in range(1, 5):
            setattr(self, f"conv{i}", conv3x3(num_feat + (i - 1) * num_grow_ch, num_grow_ch))
        self.conv5 = conv3x3(num_feat + 4 * num_grow_ch, num_feat)
        self.lrelu = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for i in range(1, 5):
            features.append(self.lrelu(getattr(self, f"conv{i}")(torch.cat(features, 1))))
        return self.conv5(torch.cat(features, 1)) * RESIDUAL_SCALE + x


class RRDB(nn.Module):
    """Three dense blocks in a row, 0.2-scaled residual around them."""

    def __init__(self, num_feat: int, num_grow_ch: int) -> None:
        super().__init__()
        self.rdb1 = DenseBlock(num_feat, num_grow_ch)
        self.rdb2 = DenseBlock(num_feat, num_grow_ch)
        self.rdb3 = DenseBlock(num_feat, num_grow_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rdb3(self.rdb2(self.rdb1(x))) * RESIDUAL_SCALE + x


class RRDBNet(SectionedNet):
    def __init__(self, scale: int = 4, num_feat: int = 64, num_block: int = 23, num_grow_ch: int = 32,
                 num_in_ch: int = 3, num_out_ch: int = 3) -> None:
        super().__init__(scale, num_in_ch, num_out_ch, num_feat, num_block)
        if scale not in (2, 4):
            raise ValueError(f"RRDBNet supports scales 2 and 4, not {scale}")
        if num_block < 1:
            raise ValueError("RRDBNet needs at least one RRDB")
        self.unshuffle = 4 // self.scale  # ×2: 2×2 pixels per LR position, then the ×4 trunk
        self.conv_first = conv3x3(num_in_ch * self.unshuffle**2, num_feat)
        self.body = nn.Sequential(*(RRDB(num_feat, num_grow_ch) for _ in range(num_block)))
        self.conv_body = conv3x3(num_feat, num_feat)
        self.conv_up1 = conv3x3(num_feat, num_feat)
        self.conv_up2 = conv3x3(num_feat, num_feat)
        self.conv_hr = conv3x3(num_feat, num_feat)
        self.conv_last = conv3x3(num_feat, num_out_ch)
        self.lrelu = nn.LeakyReLU(0.2)

    def feature_taps(self) -> dict[str, nn.Module]:
        taps: dict[str, nn.Module] = {"head": self.conv_first}
        taps.update({f"body.{i}": block for i, block in enumerate(self.body)})
        taps["body_tail"] = self.conv_body
        return taps

    def _run(self, x: torch.Tensor, record: frozenset[int]):
        height, width = x.shape[-2:]
        if self.unshuffle > 1:
            pad_h, pad_w = (-height) % self.unshuffle, (-width) % self.unshuffle
            if pad_h or pad_w:
                x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
            x = F.pixel_unshuffle(x, self.unshuffle)
        head = self.conv_first(x)
        feat, recorded = run_blocks(self.body, head, record)
        body_tail = self.conv_body(feat)
        feat = head + body_tail
        for conv in (self.conv_up1, self.conv_up2):
            feat = self.lrelu(conv(F.interpolate(feat, scale_factor=2, mode="nearest")))
        out = self.conv_last(self.lrelu(self.conv_hr(feat)))
        return head, recorded, body_tail, None, out[..., : height * self.scale, : width * self.scale]


def build(scale: int, **kwargs: Any) -> RRDBNet:
    return RRDBNet(scale=scale, **kwargs)


def detect(state_dict: Mapping[str, torch.Tensor]) -> dict[str, Any] | None:
    first = shape_of(state_dict, "conv_first.weight")
    grow = shape_of(state_dict, "body.0.rdb1.conv1.weight")
    last = shape_of(state_dict, "conv_last.weight")
    if first is None or grow is None or last is None or len(first) != 4:
        return None
    num_out_ch = last[0]
    folded = {num_out_ch: 4, 4 * num_out_ch: 2}  # conv_first's input channels → scale (×2 unshuffles 2×2)
    if first[1] not in folded:
        return None
    scale = folded[first[1]]
    kwargs = {"num_feat": first[0], "num_block": seq_len(state_dict, "body"), "num_grow_ch": grow[0],
              "num_in_ch": first[1] // (4 // scale) ** 2, "num_out_ch": num_out_ch}
    return {"scale": scale, **kwargs} if matches(build, {"scale": scale, **kwargs}, state_dict) else None


SPEC = ArchSpec(
    name="rrdbnet",
    family="ESRGAN / Real-ESRGAN RRDBNet (RealESRGAN_x4plus, RealESRGAN_x2plus, RealESRGAN_x4plus_anime_6B)",
    build=build,
    detect=detect,
    presets={
        "esrgan": {"num_feat": 64, "num_block": 23, "num_grow_ch": 32},  # ESRGAN, RealESRGAN_x4plus / x2plus
        "anime-6b": {"num_feat": 64, "num_block": 6, "num_grow_ch": 32},  # RealESRGAN_x4plus_anime_6B
    },
    scales=(2, 4),
    # fp16: Real-ESRGAN's default; every block is 0.2-scaled residual on [0, 1] input. bf16: same range.
    supports_fp16=True,
    supports_bf16=True,
    size=SizeRequirement(),
    summary="RRDBNet: ESRGAN / Real-ESRGAN generator (residual-in-residual dense blocks, nearest upsampling).",
    reference="X. Wang et al., 'ESRGAN: Enhanced Super-Resolution Generative Adversarial Networks', ECCV "
    "Workshops 2018, arXiv:1809.00219; Real-ESRGAN, arXiv:2107.10833.",
)
