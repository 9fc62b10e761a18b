"""IMDN (Hui et al., ACM MM 2019) with the official repository's parameter names.

``fea_conv`` → IMDB1..IMDBn (information multi-distillation blocks) → ``c`` (1×1 fusion of all block
outputs + LeakyReLU 0.05) → ``LR_conv`` → + fea_conv output → ``upsampler`` (conv3×3 → PixelShuffle).
Each IMDB: c1..c3 conv3×3 + LeakyReLU(0.05), each splitting off ``nf·rate`` distilled channels and
passing the rest on; c4 conv3×3 to the distilled width; concatenation → contrast-aware channel attention
(``cca``: mean + standard deviation per channel, 1×1 squeeze, ReLU, 1×1, sigmoid) → ``c5`` 1×1 → + input.
Input is [0, 1] RGB with no mean shift (as in the official code).

``cca="static"`` (ours, issue 29): each CCA layer reads a stored per-channel statistic ``IMDBk.cca.stat``
(1×C×1×1, what std + mean of its input averaged over training images; ``scripts/freeze_cca.py`` measures it)
instead of the statistics of the input it is given. The attention is then a constant per-channel gain, folded
into ``c5`` on every forward (no per-pixel reduction or multiply), and the network is purely local: a tile's
output no longer depends on the tile's size or place, so tiled equals whole up to the tile overlap's reach.
The default ``"global"`` is the official layer; its mean and std are over the whole input, a tile when tiled.

Taps: ``head`` = fea_conv, ``body.i`` = IMDB{i+1}, ``body_tail`` = LR_conv (before the long skip).
Sections: f0 = fea_conv output, f_k = IMDB outputs at the section ends, the last one = LR_conv output
(the feature the long skip adds to f0, as for every architecture here); no image skip (base None).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from jdsr_cli.archs.common import SectionedNet, conv1x1, conv3x3, matches, seq_len, shape_of, split_pixelshuffle
from jdsr_cli.archs.registry import ArchSpec, SizeRequirement


def _distilled(channels: int, rate: float) -> int:
    # The official int(channels * rate); the epsilon only absorbs floating error of a detected rate.
    return int(channels * rate + 1e-9)


CCA_MODES = ("global", "static")


def contrast_statistic(x: torch.Tensor) -> torch.Tensor:
    """std + mean of each channel over the spatial dimensions (N×C×1×1): what the official CCA squeezes."""
    mean = x.mean(dim=(2, 3), keepdim=True)
    std = (x - mean).pow(2).mean(dim=(2, 3), keepdim=True).pow(0.5)
    return std + mean


class CCALayer(nn.Module):
    """Contrast-aware channel attention: (std + mean) per channel → 1×1 → ReLU → 1×1 → sigmoid → scale.

    ``mode="static"``: the statistic is the stored buffer ``stat`` (1×C×1×1), not the input's, so the scale is a
    constant per-channel ``gain()``."""

    def __init__(self, channels: int, reduction: int = 16, mode: str = "global") -> None:
        super().__init__()
        if mode not in CCA_MODES:
            raise ValueError(f"cca {mode!r}: choose {' or '.join(CCA_MODES)}")
        self.mode = mode
        squeezed = max(1, channels // reduction)
        self.conv_du = nn.Sequential(
            conv1x1(channels, squeezed),
            nn.ReLU(inplace=True),
            conv1x1(squeezed, channels),
            nn.Sigmoid(),
        )
        if mode == "static":
            # a buffer, not a parameter: the measured statistic stays what it was measured to be; fine-tuning
            # moves conv_du (whose last bias alone can set any gain). Ones for a model not converted from one.
            self.register_buffer("stat", torch.ones(1, channels, 1, 1))

    @property
    def static(self) -> bool:
        return self.mode == "static"

    def gain(self) -> torch.Tensor:
        """The static per-channel scale sigmoid(conv_du(stat)), 1×C×1×1."""
        return self.conv_du(self.stat)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.static:
            return x * self.gain()
        return x * self.conv_du(contrast_statistic(x))


class IMDModule(nn.Module):
    def __init__(self, channels: int, distillation_rate: float = 0.25, cca_reduction: int = 16,
                 cca: str = "global") -> None:
        super().__init__()
        self.distilled = _distilled(channels, distillation_rate)
        self.remaining = channels - self.distilled
        if self.distilled < 1 or self.remaining < 1:
            raise ValueError(f"distillation rate {distillation_rate} leaves no channels to split")
        self.c1 = conv3x3(channels, channels)
        self.c2 = conv3x3(self.remaining, channels)
        self.c3 = conv3x3(self.remaining, channels)
        self.c4 = conv3x3(self.remaining, self.distilled)
        self.act = nn.LeakyReLU(0.05, inplace=True)
        self.c5 = conv1x1(self.distilled * 4, channels)
        self.cca = CCALayer(self.distilled * 4, cca_reduction, cca)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        split = (self.distilled, self.remaining)
        d1, r1 = torch.split(self.act(self.c1(x)), split, dim=1)
        d2, r2 = torch.split(self.act(self.c2(r1)), split, dim=1)
        d3, r3 = torch.split(self.act(self.c3(r2)), split, dim=1)
        d4 = self.c4(r3)
        distilled = torch.cat([d1, d2, d3, d4], dim=1)
        if self.cca.static:  # c5(x · g) = (c5.weight · g) on x: a C_out×C_in product instead of a pass over x
            weight = self.c5.weight * self.cca.gain().to(self.c5.weight.dtype)
            return F.conv2d(distilled, weight, self.c5.bias) + x
        return self.c5(self.cca(distilled)) + x


class IMDN(SectionedNet):
    def __init__(
        self,
        scale: int = 4,
        nf: int = 64,
        num_modules: int = 6,
        distillation_rate: float = 0.25,
        cca_reduction: int = 16,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        cca: str = "global",
    ) -> None:
        super().__init__(scale, num_in_ch, num_out_ch, nf, num_modules)
        if num_modules < 1:
            raise ValueError("IMDN needs at least one IMDB")
        self.cca_mode = cca

        self.fea_conv = conv3x3(num_in_ch, nf)
        for i in range(num_modules):
            setattr(self, f"IMDB{i + 1}", IMDModule(nf, distillation_rate, cca_reduction, cca))
        self.c = nn.Sequential(conv1x1(nf * num_modules, nf), nn.LeakyReLU(0.05, inplace=True))
        self.LR_conv = conv3x3(nf, nf)
        self.upsampler = nn.Sequential(
            conv3x3(nf, num_out_ch * self.scale * self.scale), nn.PixelShuffle(self.scale)
        )

    def blocks(self) -> list[IMDModule]:
        return [getattr(self, f"IMDB{i + 1}") for i in range(self.num_body_units)]

    def feature_taps(self) -> dict[str, nn.Module]:
        taps: dict[str, nn.Module] = {"head": self.fea_conv}
        taps.update({f"body.{i}": block for i, block in enumerate(self.blocks())})
        taps["body_tail"] = self.LR_conv
        return taps

    def _run(self, x: torch.Tensor, record: frozenset[int]):
        head = self.fea_conv(x)
        feat = head
        recorded = []
        fusion, act = self.c[0], self.c[1]
        nf = self.feature_channels
        fused: torch.Tensor | None = None
        for i, block in enumerate(self.blocks()):
            feat = block(feat)
            if i in record:
                recorded.append(feat)
            # c(cat(outs)) as a sum of each block output's share of the 1x1 fusion: the same numbers up to
            # float rounding, without the concatenation (6x a feature map) or keeping every block output alive
            part = F.conv2d(feat, fusion.weight[:, i * nf:(i + 1) * nf], fusion.bias if i == 0 else None)
            fused = part if fused is None else fused.add_(part)
        assert fused is not None
        body_tail = self.LR_conv(act(fused))
        y = self.upsampler(body_tail + head)
        return head, recorded, body_tail, None, y


def build(scale: int, **kwargs: Any) -> IMDN:
    return IMDN(scale=scale, **kwargs)


def detect(state_dict: Mapping[str, torch.Tensor]) -> dict[str, Any] | None:
    fea = shape_of(state_dict, "fea_conv.weight")
    c4 = shape_of(state_dict, "IMDB1.c4.weight")
    squeeze = shape_of(state_dict, "IMDB1.cca.conv_du.0.weight")
    up = shape_of(state_dict, "upsampler.0.weight")
    if fea is None or c4 is None or squeeze is None or up is None or len(fea) != 4:
        return None
    nf, num_in_ch = fea[0], fea[1]
    num_modules = 0
    while f"IMDB{num_modules + 1}.c1.weight" in state_dict:
        num_modules += 1
    split = split_pixelshuffle(up[0], SPEC_SCALES, preferred=[num_in_ch])
    if split is None or squeeze[0] < 1:
        return None
    num_out_ch, scale = split
    kwargs: dict[str, Any] = {
        "nf": nf,
        "num_modules": num_modules,
        "distillation_rate": c4[0] / nf,
        "cca_reduction": (4 * c4[0]) // squeeze[0],
        "num_in_ch": num_in_ch,
        "num_out_ch": num_out_ch,
    }
    if "IMDB1.cca.stat" in state_dict:  # frozen statistics (scripts/freeze_cca.py); without: the official CCA
        kwargs["cca"] = "static"
    if seq_len(state_dict, "upsampler") != 1 or not matches(build, {"scale": scale, **kwargs}, state_dict):
        return None
    return {"scale": scale, **kwargs}


SPEC_SCALES = (2, 3, 4)

SPEC = ArchSpec(
    name="imdn",
    family="IMDN (official layout)",
    build=build,
    detect=detect,
    presets={
        "default": {"nf": 64, "num_modules": 6, "distillation_rate": 0.25},
        # a distillation student: a third of the default's multiply-adds per output pixel at every scale
        # (14,489 against 44,364 at ×4; 234K parameters), measured with torch.utils.flop_counter
        "small": {"nf": 36, "num_modules": 6, "distillation_rate": 0.25},
    },
    scales=SPEC_SCALES,
    # fp16: on. Input and features stay in the [0, 1] range (no mean shift, no ×255), the network is
    # shallow (6 blocks) and every block is normalised by its own residual, so activations stay far
    # from the fp16 limit. bf16: fine (fp32 exponent range).
    supports_fp16=True,
    supports_bf16=True,
    size=SizeRequirement(),
    summary="IMDN: information multi-distillation blocks with contrast-aware channel attention "
    "(official parameter names).",
    reference="Z. Hui, X. Gao, Y. Yang, X. Wang, 'Lightweight Image Super-Resolution with Information "
    "Multi-distillation Network', ACM Multimedia 2019, arXiv:1909.11856.",
)
