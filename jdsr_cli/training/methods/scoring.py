"""Validation scores of an upscaler: PSNR-Y/SSIM-Y of its 8-bit output, the project's standard convention."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from jdsr_cli.io.quantize import quantize_tensor
from jdsr_cli.ops.metrics import MetricConvention
from jdsr_cli.training.method_api import Validation


def to_batch(image: np.ndarray, device: torch.device) -> torch.Tensor:
    """An H×W×C uint8 image as a 1×C×H×W float batch in [0, 1] on ``device``."""
    return torch.from_numpy(image).permute(2, 0, 1)[None].float().div(255).to(device)


def to_uint8(batch: torch.Tensor) -> np.ndarray:
    """The first image of a batch as H×W×C uint8 (rounded as ``jdsr upscale`` writes it)."""
    return quantize_tensor(batch[0], 8).permute(1, 2, 0).cpu().numpy()


@torch.inference_mode()
def score_upscaler(net: nn.Module, pairs: list[Any], device: torch.device, scale: int,
                   feed: Callable[[Any], torch.Tensor] | None = None, teacher: nn.Module | None = None) -> Validation:
    """PSNR-Y/SSIM-Y (border = scale) of ``net`` on validation pairs, fed each pair's LR (or ``feed(pair)``).

    With a ``teacher`` the target is its output on the same input (a distillation without the HR term picks its
    best checkpoint by how close it comes to the teacher) and PSNR-Y to the HR is logged as ``hr_psnr``."""
    convention = MetricConvention.standard(scale)
    psnrs, ssims, hr_psnrs = [], [], []
    for pair in pairs:
        x = feed(pair) if feed is not None else to_batch(pair.lr, device)
        sr = to_uint8(net(x))
        target = pair.hr if teacher is None else to_uint8(teacher(x))
        psnrs.append(convention.psnr(sr, target))
        ssims.append(convention.ssim(sr, target))
        if teacher is not None:
            hr_psnrs.append(convention.psnr(sr, pair.hr))
    extra = {"hr_psnr": float(np.mean(hr_psnrs))} if hr_psnrs else {}
    return Validation(float(np.mean(psnrs)), float(np.mean(ssims)), len(psnrs), extra)
