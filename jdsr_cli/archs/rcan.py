"""RCAN (Zhang et al., ECCV 2018) with BasicSR parameter names.

Residual-in-residual: ``num_group`` residual groups, each ``num_block`` RCABs (conv, ReLU, conv, channel
attention, local skip) followed by a conv and a group skip; then ``conv_after_body``, the long skip,
the EDSR sub-pixel upsampler and ``conv_last``, all inside the EDSR mean shift (img_range 255).

Taps: ``head`` = conv_first, ``body.i`` = residual group i, ``body_tail`` = conv_after_body (before the
long skip). Sections split the residual groups.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from jdsr_cli.archs.common import (
    DIV2K_RGB_MEAN,
    ChannelAttention,
    MeanShiftMixin,
    SectionedNet,
    Upsample,
    conv3x3,
    matches,
    run_blocks,
    seq_len,
    shape_of,
    upsample_scale,
)
from jdsr_cli.archs.registry import ArchSpec, SizeRequirement


class RCAB(nn.Module):
    """Residual channel attention block (BasicSR names: ``rcab.0`` conv, ``rcab.2`` conv, ``rcab.3`` CA)."""

    def __init__(self, num_feat: int, reduction: int = 16, res_scale: float = 1.0) -> None:
        super().__init__()
        self.res_scale = float(res_scale)
        self.rcab = nn.Sequential(
            conv3x3(num_feat, num_feat),
            nn.ReLU(inplace=True),
            conv3x3(num_feat, num_feat),
            ChannelAttention(num_feat, reduction),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rcab(x) * self.res_scale + x


class ResidualGroup(nn.Module):
    def __init__(self, num_feat: int, num_block: int, reduction: int = 16, res_scale: float = 1.0) -> None:
        super().__init__()
        self.residual_group = nn.Sequential(*(RCAB(num_feat, reduction, res_scale) for _ in range(num_block)))
        self.conv = conv3x3(num_feat, num_feat)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.residual_group(x)) + x


class RCAN(MeanShiftMixin, SectionedNet):
    def __init__(
        self,
        scale: int = 4,
        num_feat: int = 64,
        num_group: int = 10,
        num_block: int = 20,
        reduction: int = 16,
        res_scale: float = 1.0,
        img_range: float = 255.0,
        rgb_mean: Sequence[float] = DIV2K_RGB_MEAN,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
    ) -> None:
        super().__init__(scale, num_in_ch, num_out_ch, num_feat, num_group)
        if num_group < 1 or num_block < 1:
            raise ValueError("RCAN needs at least one group of one block")
        self._init_mean_shift(img_range, rgb_mean, num_in_ch, num_out_ch)

        self.conv_first = conv3x3(num_in_ch, num_feat)
        self.body = nn.Sequential(
            *(ResidualGroup(num_feat, num_block, reduction, res_scale) for _ in range(num_group))
        )
        self.conv_after_body = conv3x3(num_feat, num_feat)
        self.upsample = Upsample(self.scale, num_feat)
        self.conv_last = conv3x3(num_feat, num_out_ch)

    def feature_taps(self) -> dict[str, nn.Module]:
        taps: dict[str, nn.Module] = {"head": self.conv_first}
        taps.update({f"body.{i}": group for i, group in enumerate(self.body)})
        taps["body_tail"] = self.conv_after_body
        return taps

    def _run(self, x: torch.Tensor, record: frozenset[int]):
        head = self.conv_first(self.normalize(x))
        feat, recorded = run_blocks(self.body, head, record)
        body_tail = self.conv_after_body(feat)
        y = self.conv_last(self.upsample(body_tail + head))
        return head, recorded, body_tail, None, self.denormalize(y)


def build(scale: int, **kwargs: Any) -> RCAN:
    return RCAN(scale=scale, **kwargs)


_CA_KEY = "body.0.residual_group.0.rcab.3.attention.1.weight"


def detect(state_dict: Mapping[str, torch.Tensor]) -> dict[str, Any] | None:
    first = shape_of(state_dict, "conv_first.weight")
    squeeze = shape_of(state_dict, _CA_KEY)
    last = shape_of(state_dict, "conv_last.weight")
    if first is None or squeeze is None or last is None or len(first) != 4:
        return None
    num_feat, num_in_ch = first[0], first[1]
    scale = upsample_scale(state_dict, "upsample", num_feat)
    if scale not in SPEC_SCALES or squeeze[0] < 1:
        return None
    kwargs: dict[str, Any] = {
        "num_feat": num_feat,
        "num_group": seq_len(state_dict, "body"),
        "num_block": seq_len(state_dict, "body.0.residual_group"),
        "reduction": num_feat // squeeze[0],
        "num_in_ch": num_in_ch,
        "num_out_ch": last[0],
        # res_scale is not stored; RCAN uses 1.
    }
    if not matches(build, {"scale": scale, **kwargs}, state_dict):
        return None
    return {"scale": scale, **kwargs}


SPEC_SCALES = (2, 3, 4)

SPEC = ArchSpec(
    name="rcan",
    family="RCAN (BasicSR layout)",
    build=build,
    detect=detect,
    presets={
        # The published RCAN: 10 groups × 20 RCABs, 64 features (15.59M params at ×4).
        "full": {"num_group": 10, "num_block": 20, "num_feat": 64, "reduction": 16},
        # The usual KD student (FAKD, DUKD, LSFD): 10 groups × 6 RCABs (5.17M params at ×4).
        "small": {"num_group": 10, "num_block": 6, "num_feat": 64, "reduction": 16},
        # For tests and smoke runs only.
        "tiny": {"num_group": 2, "num_block": 2, "num_feat": 32, "reduction": 16},
    },
    scales=SPEC_SCALES,
    # fp16: off. RCAN runs in the 0..255 range through 200 residual blocks; spandrel also marks RCAN
    # supports_half=False because activations overflow fp16. bf16 has fp32's range, so it is fine.
    supports_fp16=False,
    supports_bf16=True,
    size=SizeRequirement(),
    summary="RCAN: residual-in-residual groups of channel-attention blocks (BasicSR layout).",
    reference="Y. Zhang, K. Li, K. Li, L. Wang, B. Zhong, Y. Fu, 'Image Super-Resolution Using Very Deep "
    "Residual Channel Attention Networks', ECCV 2018, arXiv:1807.02758.",
)
