"""Old-style ESRGAN ``.pth`` names (the original ESRGAN repository's ``nn.Sequential`` layout) in today's layout.

The community ×4 models (4x-UltraSharp, Remacri, 4x-Foolhardy and most of that zoo) were trained with the
original code, whose generator is one Sequential: ``model.0`` = conv_first, ``model.1.sub.N.RDB{1,2,3}
.conv{1..5}.0`` = the dense blocks, ``model.1.sub.<last>`` = conv_body, ``model.3`` / ``model.6`` = the two
upsampling convs (after nearest ×2), ``model.8`` = conv_hr, ``model.10`` = conv_last. Renamed, those tensors
are exactly RRDBNet ×4's (``archs/rrdbnet.py``). Other upscale factors of that layout (1×, 2×, 8×) have another
number of upsampling steps and are not renamed: they stay unrecognised with the usual message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

_DENSE = re.compile(r"1\.sub\.(\d+)\.RDB([123])\.conv([1-5])\.0\.(weight|bias)")
_TRUNK = re.compile(r"1\.sub\.(\d+)\.(weight|bias)")
_FIXED = {"0": "conv_first", "3": "conv_up1", "6": "conv_up2", "8": "conv_hr", "10": "conv_last"}


def rename_old_esrgan(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor] | None:
    """Today's RRDBNet names for an old-style ×4 ESRGAN state dict (``model.`` already stripped); None otherwise."""
    if "1.sub.0.RDB1.conv1.0.weight" not in state or "10.weight" not in state:
        return None
    renamed: dict[str, torch.Tensor] = {}
    for name, tensor in state.items():
        new = _rename(name)
        if new is None:
            return None
        renamed[new] = tensor
    return renamed


def _rename(name: str) -> str | None:
    dense = _DENSE.fullmatch(name)
    if dense:
        block, rdb, conv, kind = dense.groups()
        return f"body.{block}.rdb{rdb}.conv{conv}.{kind}"
    trunk = _TRUNK.fullmatch(name)
    if trunk:
        return f"conv_body.{trunk.group(2)}"
    layer, _, kind = name.partition(".")
    return f"{_FIXED[layer]}.{kind}" if layer in _FIXED and kind in ("weight", "bias") else None
