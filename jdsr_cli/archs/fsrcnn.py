"""FSRCNN (Dong, Loy, Tang, ECCV 2016) with the parameter names of the common PyTorch port.

``first_part`` = conv5×5 (in→d) + PReLU (feature extraction); ``mid_part`` = conv1×1 (d→s) + PReLU
(shrinking), m × [conv3×3 (s→s) + PReLU] (mapping), conv1×1 (s→d) + PReLU (expanding); ``last_part`` =
deconvolution 9×9, stride s (d→out). No global skip and no normalisation; input [0, 1]. The paper works
on the Y channel (build with ``num_in_ch=1``); the default here is RGB.

Initialisation follows the paper: convs ~ N(0, 2/(out·k²)) (He), the deconvolution ~ N(0, 0.001²),
biases 0.

Taps: ``head`` = first_part (d channels), ``body.i`` = mapping layer i (its PReLU, s channels),
``body_tail`` = the expanding layer's PReLU (end of mid_part, d channels).
Sections run over the m mapping layers in the shrunk space: f0 = shrinking-layer output, f_k = mapping
outputs at the section ends (all s channels, so ``section_channels = s`` while ``feature_channels = d``);
the last section feature is the last mapping layer's output, and the model's own tail is expand + deconv.

Note: the deconvolution's weights do not depend on the scale, so ``detect`` cannot infer it; it
reports ×3 (the paper's main setting; see ``jdsr_cli.checkpoints.recipe.matching_scales``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from jdsr_cli.archs.common import SectionedNet, matches, seq_len, shape_of
from jdsr_cli.archs.registry import ArchSpec, SizeRequirement

#: scale reported by ``detect``: a state dict does not encode it.
DETECT_DEFAULT_SCALE = 3


class FSRCNN(SectionedNet):
    def __init__(
        self,
        scale: int = 3,
        d: int = 56,
        s: int = 12,
        m: int = 4,
        num_in_ch: int = 3,
        num_out_ch: int | None = None,
    ) -> None:
        if m < 1:
            raise ValueError("FSRCNN needs at least one mapping layer")
        num_out_ch = num_in_ch if num_out_ch is None else num_out_ch
        super().__init__(scale, num_in_ch, num_out_ch, d, m)
        self.shrink_channels = int(s)

        self.first_part = nn.Sequential(nn.Conv2d(num_in_ch, d, 5, padding=2), nn.PReLU(d))
        mid: list[nn.Module] = [nn.Conv2d(d, s, 1), nn.PReLU(s)]
        for _ in range(m):
            mid += [nn.Conv2d(s, s, 3, padding=1), nn.PReLU(s)]
        mid += [nn.Conv2d(s, d, 1), nn.PReLU(d)]
        self.mid_part = nn.Sequential(*mid)
        self.last_part = nn.ConvTranspose2d(
            d, num_out_ch, 9, stride=self.scale, padding=4, output_padding=self.scale - 1
        )
        self._init_weights()

    @property
    def section_channels(self) -> int:
        """Sections end in the shrunk space (s channels), not at the feature width d."""
        return self.shrink_channels

    @torch.no_grad()
    def _init_weights(self) -> None:
        for module in [*self.first_part, *self.mid_part]:
            if isinstance(module, nn.Conv2d):
                fan_out = module.out_channels * module.weight[0][0].numel()
                nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / fan_out))
                nn.init.zeros_(module.bias)
        nn.init.normal_(self.last_part.weight, 0.0, 0.001)
        nn.init.zeros_(self.last_part.bias)

    def _mapping(self, i: int) -> tuple[nn.Module, nn.Module]:
        return self.mid_part[2 + 2 * i], self.mid_part[3 + 2 * i]

    def feature_taps(self) -> dict[str, nn.Module]:
        taps: dict[str, nn.Module] = {"head": self.first_part}
        taps.update({f"body.{i}": self._mapping(i)[1] for i in range(self.num_body_units)})
        taps["body_tail"] = self.mid_part[-1]
        return taps

    def _run(self, x: torch.Tensor, record: frozenset[int]):
        feat = self.first_part(x)
        head = self.mid_part[1](self.mid_part[0](feat))
        feat = head
        recorded = []
        for i in range(self.num_body_units):
            conv, act = self._mapping(i)
            feat = act(conv(feat))
            if i in record:
                recorded.append(feat)
        body_tail = feat
        expanded = self.mid_part[-1](self.mid_part[-2](feat))
        return head, recorded, body_tail, None, self.last_part(expanded)


def build(scale: int, **kwargs: Any) -> FSRCNN:
    return FSRCNN(scale=scale, **kwargs)


def detect(state_dict: Mapping[str, torch.Tensor]) -> dict[str, Any] | None:
    first = shape_of(state_dict, "first_part.0.weight")
    shrink = shape_of(state_dict, "mid_part.0.weight")
    last = shape_of(state_dict, "last_part.weight")
    if first is None or shrink is None or last is None or len(first) != 4 or len(last) != 4:
        return None
    mid_len = seq_len(state_dict, "mid_part")
    if mid_len < 6 or mid_len % 2:
        return None
    kwargs: dict[str, Any] = {
        "d": first[0],
        "s": shrink[0],
        "m": (mid_len - 4) // 2,
        "num_in_ch": first[1],
        "num_out_ch": last[1],
    }
    scale = DETECT_DEFAULT_SCALE
    if not matches(build, {"scale": scale, **kwargs}, state_dict):
        return None
    return {"scale": scale, **kwargs}


SPEC = ArchSpec(
    name="fsrcnn",
    family="FSRCNN (common PyTorch port)",
    build=build,
    detect=detect,
    presets={
        "fsrcnn": {"d": 56, "s": 12, "m": 4},
        # FSRCNN-s, the paper's real-time variant.
        "fsrcnn-s": {"d": 32, "s": 5, "m": 1},
    },
    scales=(2, 3, 4),
    # fp16 and bf16: on. Eight small layers on [0, 1] input with no normalisation: no overflow risk.
    supports_fp16=True,
    supports_bf16=True,
    size=SizeRequirement(),
    summary="FSRCNN: shrink-map-expand CNN in LR space with a deconvolution tail.",
    reference="C. Dong, C. C. Loy, X. Tang, 'Accelerating the Super-Resolution Convolutional Neural "
    "Network', ECCV 2016, arXiv:1608.00367.",
)
