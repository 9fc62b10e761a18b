"""EDSR (Lim et al., CVPR-W 2017) with BasicSR parameter names, plus the JDSR peer tail.

Layout ``tail="edsr"`` (BasicSR ``EDSR``; its .pth files load strictly)::

    x' = (x - mean) * img_range
    f0 = conv_first(x');  f = body(f0);  r = conv_after_body(f) + f0
    y  = conv_last(upsample(r)) / img_range + mean

Layout ``tail="peer"`` (JDSR ``EDSR_LR2HRSL``, docs/design/jdsr-method.md §3.1): no conv after the body, the global
skip adds the head features to the last ResBlock output, then ``tail.0`` conv3×3 (C→C), ``tail.1``
conv3×3 (C→out·s²), ``tail.2`` PixelShuffle(s), and the same mean shift around the network.

Taps: ``head`` = conv_first, ``body.i`` = ResBlock i, ``body_tail`` = conv_after_body (edsr) or the last
ResBlock (peer, whose body has no closing conv); all before the global skip.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from jdsr_cli.archs.common import (
    DIV2K_RGB_MEAN,
    MeanShiftMixin,
    ResBlock,
    SectionedNet,
    Upsample,
    conv3x3,
    matches,
    run_blocks,
    seq_len,
    shape_of,
    split_pixelshuffle,
    upsample_scale,
)
from jdsr_cli.archs.registry import ArchSpec, SizeRequirement

TAILS = ("edsr", "peer")


class EDSR(MeanShiftMixin, SectionedNet):
    def __init__(
        self,
        scale: int = 4,
        num_feat: int = 64,
        num_block: int = 16,
        res_scale: float = 1.0,
        img_range: float = 255.0,
        rgb_mean: Sequence[float] = DIV2K_RGB_MEAN,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        tail: str = "edsr",
    ) -> None:
        super().__init__(scale, num_in_ch, num_out_ch, num_feat, num_block)
        if tail not in TAILS:
            raise ValueError(f"EDSR tail must be one of {TAILS}, not {tail!r}")
        if num_block < 1:
            raise ValueError("EDSR needs at least one residual block")
        self.tail_kind = tail
        self._init_mean_shift(img_range, rgb_mean, num_in_ch, num_out_ch)

        self.conv_first = conv3x3(num_in_ch, num_feat)
        self.body = nn.Sequential(*(ResBlock(num_feat, res_scale) for _ in range(num_block)))
        if tail == "edsr":
            self.conv_after_body = conv3x3(num_feat, num_feat)
            self.upsample = Upsample(self.scale, num_feat)
            self.conv_last = conv3x3(num_feat, num_out_ch)
        else:
            self.tail = nn.Sequential(
                conv3x3(num_feat, num_feat),
                conv3x3(num_feat, num_out_ch * self.scale * self.scale),
                nn.PixelShuffle(self.scale),
            )

    def feature_taps(self) -> dict[str, nn.Module]:
        taps: dict[str, nn.Module] = {"head": self.conv_first}
        taps.update({f"body.{i}": block for i, block in enumerate(self.body)})
        taps["body_tail"] = self.conv_after_body if self.tail_kind == "edsr" else self.body[-1]
        return taps

    def _run(self, x: torch.Tensor, record: frozenset[int]):
        head = self.conv_first(self.normalize(x))
        feat, recorded = run_blocks(self.body, head, record)
        if self.tail_kind == "edsr":
            body_tail = self.conv_after_body(feat)
            y = self.conv_last(self.upsample(body_tail + head))
        else:
            body_tail = feat
            y = self.tail(body_tail + head)
        return head, recorded, body_tail, None, self.denormalize(y)


def build(scale: int, **kwargs: Any) -> EDSR:
    return EDSR(scale=scale, **kwargs)


def detect(state_dict: Mapping[str, torch.Tensor]) -> dict[str, Any] | None:
    first = shape_of(state_dict, "conv_first.weight")
    if first is None or len(first) != 4 or shape_of(state_dict, "body.0.conv1.weight") is None:
        return None
    num_feat, num_in_ch = first[0], first[1]
    num_block = seq_len(state_dict, "body")
    kwargs: dict[str, Any] = {"num_feat": num_feat, "num_block": num_block, "num_in_ch": num_in_ch}
    if "conv_after_body.weight" in state_dict:
        scale = upsample_scale(state_dict, "upsample", num_feat)
        last = shape_of(state_dict, "conv_last.weight")
        if scale is None or last is None:
            return None
        kwargs.update(num_out_ch=last[0], tail="edsr")
    else:
        up = shape_of(state_dict, "tail.1.weight")
        if up is None:
            return None
        split = split_pixelshuffle(up[0], SPEC_SCALES, preferred=[num_in_ch])
        if split is None:
            return None
        kwargs.update(num_out_ch=split[0], tail="peer")
        scale = split[1]
    # res_scale is not stored in a state dict. EDSR's paper uses 0.1 only for its wide (256-feature)
    # model, so infer it from the width; narrower 0.1 variants (e.g. DUKD's 32×64) need config.json.
    kwargs["res_scale"] = 0.1 if num_feat >= 256 else 1.0
    if scale not in SPEC_SCALES or not matches(build, {"scale": scale, **kwargs}, state_dict):
        return None
    return {"scale": scale, **kwargs}


SPEC_SCALES = (2, 3, 4)

SPEC = ArchSpec(
    name="edsr",
    family="EDSR / MSRResNet-style (BasicSR EDSR layout)",
    build=build,
    detect=detect,
    presets={
        # EDSR-baseline: 16 blocks × 64 features, res_scale 1 (≈1.52M params at ×4).
        "baseline": {"num_feat": 64, "num_block": 16, "res_scale": 1.0},
        # The JDSR peer EDSR_LR2HRSL: 2 ResBlocks, tail conv-conv-PixelShuffle (214,128 params at ×4).
        "tiny": {"num_feat": 64, "num_block": 2, "res_scale": 1.0, "tail": "peer"},
        # The bundled superior-LR decoders slr-up-x{2,3,4}: the peer layout with 6 ResBlocks (509,552 params
        # at ×4); 3× the peer's blocks measured +0.36 dB over it at 1000 steps (docs/training.md, superior LR).
        "slr-decoder": {"num_feat": 64, "num_block": 6, "res_scale": 1.0, "tail": "peer"},
        # Full EDSR: 32 blocks × 256 features, res_scale 0.1 (≈43M params at ×4).
        "large": {"num_feat": 256, "num_block": 32, "res_scale": 0.1},
    },
    scales=SPEC_SCALES,
    # fp16: off. The network works in the 0..255 range (img_range 255) and sums up to 32 residuals of
    # 256-wide features without normalisation; activations can exceed the fp16 range (65504) and there
    # is no safety margin for fine-tuned weights. bf16 keeps fp32's exponent range, so it is safe.
    supports_fp16=False,
    supports_bf16=True,
    size=SizeRequirement(),
    summary="EDSR: residual blocks without batch norm, sub-pixel upsampler (BasicSR layout); "
    "tail='peer' gives the JDSR peer network.",
    reference="B. Lim, S. Son, H. Kim, S. Nah, K. M. Lee, 'Enhanced Deep Residual Networks for Single "
    "Image Super-Resolution', CVPR Workshops (NTIRE) 2017, arXiv:1707.02921.",
)
