"""The superior-LR encoder (JDSR stage 1, "EDN" encoder): a learned HR → LR downscaler.

Layout (docs/design/jdsr-method.md §2.1, port ``model/edn.py``)::

    x' = (x - mean) * img_range
    f0 = head(x')                 ×2: conv3×3 stride 2 (pad 1); ×3: conv3×3 stride 3 (no pad);
                                  ×4: two conv3×3 stride 2 (pad 1)
    r  = conv_after_body(body(f0)) + f0
    y  = area(x) + conv_last(r) / img_range          (base="area", our default)
    y  = conv_last(r) / img_range + mean             (base="none", the port's layout)

``base="area"`` is our choice [I]: the network learns only a residual over the s×s box average, so it
starts out LR-like and trains faster; the residual is small, so a bf16 forward stays far below one
8-bit level. The output is **quantised to 8-bit levels** in ``forward`` with a straight-through
estimator (the value is rounded, the gradient passes as if it were not), so what training optimises,
what evaluation scores and what ``jdsr downscale`` saves are the same 8-bit image.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from jdsr_cli.archs.base import SRNet
from jdsr_cli.archs.common import DIV2K_RGB_MEAN, MeanShiftMixin, ResBlock, conv3x3, matches, seq_len, shape_of
from jdsr_cli.archs.registry import ArchSpec, SizeRequirement

BASES = ("area", "none")
LEVELS = 255.0


def quantize_8bit(y: torch.Tensor, straight_through: bool = True) -> torch.Tensor:
    """Clamp to [0, 1] and round to the 256 levels of an 8-bit image; gradient passes unchanged (STE)."""
    y = y.clamp(0.0, 1.0)
    rounded = torch.round(y * LEVELS) / LEVELS
    return y + (rounded - y).detach() if straight_through else rounded


def _head(scale: int, in_ch: int, num_feat: int) -> nn.Sequential:
    if scale == 2:
        return nn.Sequential(nn.Conv2d(in_ch, num_feat, 3, 2, 1))
    if scale == 3:
        return nn.Sequential(nn.Conv2d(in_ch, num_feat, 3, 3, 0))
    if scale == 4:
        return nn.Sequential(nn.Conv2d(in_ch, num_feat, 3, 2, 1), nn.Conv2d(num_feat, num_feat, 3, 2, 1))
    raise ValueError(f"the superior-LR encoder supports scales 2, 3 and 4, not {scale}")


class SuperiorLREncoder(MeanShiftMixin, SRNet):
    """N×C×H×W in [0, 1] (H, W multiples of ``scale``) → N×C×H/s×W/s on the 8-bit grid."""

    direction = "down"

    def __init__(
        self,
        scale: int = 4,
        num_feat: int = 32,
        num_block: int = 4,
        img_range: float = 255.0,
        rgb_mean: Sequence[float] = DIV2K_RGB_MEAN,
        num_in_ch: int = 3,
        base: str = "area",
    ) -> None:
        super().__init__(scale, num_in_ch, num_in_ch, num_feat, num_block)
        if base not in BASES:
            raise ValueError(f"encoder base must be one of {BASES}, not {base!r}")
        if num_block < 1:
            raise ValueError("the encoder needs at least one residual block")
        self.base = base
        self._init_mean_shift(img_range, rgb_mean, num_in_ch, num_in_ch)
        self.head = _head(self.scale, num_in_ch, num_feat)
        self.body = nn.Sequential(*(ResBlock(num_feat) for _ in range(num_block)))
        self.conv_after_body = conv3x3(num_feat, num_feat)
        self.conv_last = conv3x3(num_feat, num_in_ch)

    def continuous(self, x: torch.Tensor) -> torch.Tensor:
        """The LR before clamping and rounding (for training without the rounding, as an ablation)."""
        head = self.head(self.normalize(x))
        residual = self.conv_last(self.conv_after_body(self.body(head)) + head).float()
        if self.base == "area":
            return nn.functional.avg_pool2d(x.float(), self.scale) + residual / self.img_range
        return residual / self.img_range + self.mean_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return quantize_8bit(self.continuous(x))


def build(scale: int, **kwargs: Any) -> SuperiorLREncoder:
    return SuperiorLREncoder(scale=scale, **kwargs)


def detect(state_dict: Mapping[str, torch.Tensor]) -> dict[str, Any] | None:
    first = shape_of(state_dict, "head.0.weight")
    if first is None or "conv_first.weight" in state_dict or shape_of(state_dict, "conv_last.weight") is None:
        return None
    # ×2 and ×3 heads differ only in stride, which a state dict does not store: report ×2, and
    # ``base`` (area or none) is not stored either: detection assumes "area", the layout we train.
    # ``checkpoints.recipe.matching_scales`` tells callers that ×3 fits equally (our own checkpoints carry config.json).
    scale = 4 if "head.1.weight" in state_dict else 2
    kwargs: dict[str, Any] = {"num_feat": first[0], "num_in_ch": first[1], "num_block": seq_len(state_dict, "body")}
    if not matches(build, {"scale": scale, **kwargs}, state_dict):
        return None
    return {"scale": scale, **kwargs}


SPEC = ArchSpec(
    name="slr-encoder",
    family="jdsr superior-LR encoder",
    build=build,
    detect=detect,
    presets={
        # The bundled slr-down-x{2,3,4}: 32 features, 4 ResBlocks (size chosen by measurement, docs/training.md).
        "small": {"num_feat": 32, "num_block": 4},
        # The port's EDN encoder: 64 features, 20 ResBlocks (~1.5M params).
        "edn": {"num_feat": 64, "num_block": 20, "base": "none"},
    },
    scales=(2, 3, 4),
    supports_fp16=False,
    # bf16 is safe in training (the residual over the area base is small) but deployment rounds to
    # 8-bit levels, where bf16's 8-bit mantissa could flip a level: run fp32 (the encoder is cheap).
    supports_bf16=False,
    size=SizeRequirement(),  # H and W must be multiples of the scale: jdsr_cli.commands.downscale pads or crops
    direction="down",
    summary="Superior-LR encoder (JDSR stage 1): strided head + ResBlocks over an area-average base; "
    "output rounded to 8-bit levels (straight-through in training).",
    reference="X. Luo, Q. Liang, D. Liu, Y. Qu, 'Boosting Lightweight Single Image Super-resolution via "
    "Joint-distillation', ACM MM 2021 (stage 1, reconstructed from the MindSpore port).",
)
