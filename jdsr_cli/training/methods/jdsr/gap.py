"""The performance gap Δ = PSNR(peer on the superior LR) − PSNR(target on the bicubic LR)
(docs/design/jdsr-method.md §7.2).

Measured on centre crops of held-out images (never trained on by the target's main loss), PSNR-Y with a
border of ``scale`` pixels and 8-bit outputs, the project's standard convention. The gate [I]: while
Δ > τ the peer waits (``pause-peer``: no update, its schedule paused too) or stops learning from the target
(``stop-peer-ml``), so the target's partner stays within reach.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from jdsr_cli.io.quantize import to_uint8
from jdsr_cli.ops.metrics import MetricConvention
from jdsr_cli.training.data import ImagePair

CROP = 64  # LR side of each centre crop: the measurement costs about one training batch


@dataclass(frozen=True)
class GapCrops:
    """Held-out (LR, HR) centre crops as batches of one, on the run's device."""

    pairs: list[tuple[torch.Tensor, torch.Tensor, np.ndarray]]  # lr, hr tensors and the uint8 HR
    scale: int

    @classmethod
    def from_pairs(cls, pairs: list[ImagePair], count: int, scale: int, device: torch.device) -> GapCrops:
        crops = []
        for pair in pairs[:count]:
            h, w = pair.lr.shape[:2]
            side_y, side_x = min(CROP, h), min(CROP, w)
            y, x = (h - side_y) // 2, (w - side_x) // 2
            lr = pair.lr[y:y + side_y, x:x + side_x]
            hr = pair.hr[y * scale:(y + side_y) * scale, x * scale:(x + side_x) * scale]
            crops.append((_tensor(lr, device), _tensor(hr, device), np.ascontiguousarray(hr)))
        return cls(crops, scale)


def _tensor(image: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float().div(255).to(device)


def _uint8(batch: torch.Tensor) -> np.ndarray:
    return to_uint8(batch[0].float().clamp(0, 1).permute(1, 2, 0).cpu().numpy())


@torch.no_grad()
def measure_gap(crops: GapCrops, target: nn.Module, peer: nn.Module, encoder: nn.Module) -> tuple[float, float]:
    """(PSNR of the peer, PSNR of the target) in dB over the crops."""
    convention = MetricConvention.standard(crops.scale)
    peer_psnr, target_psnr = [], []
    for lr, hr, hr_uint8 in crops.pairs:
        target_psnr.append(convention.psnr(_uint8(target(lr)), hr_uint8))
        peer_psnr.append(convention.psnr(_uint8(peer(encoder(hr))), hr_uint8))
    return float(np.mean(peer_psnr)), float(np.mean(target_psnr))
