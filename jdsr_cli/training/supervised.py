"""The plain supervised step (L1 to HR, Adam, cosine schedule): the base every training method extends."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from jdsr_cli.training.data import PatchSampler


@dataclass
class FitResult:
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0


def fit_supervised(
    model: nn.Module,
    sampler: PatchSampler,
    *,
    steps: int,
    batch_size: int = 16,
    lr: float = 2e-4,
    min_lr_ratio: float = 0.01,
    device: torch.device | str = "cpu",
    seed: int = 0,
    log_every: int = 0,
    log: Callable[[int, float], None] | None = None,
) -> FitResult:
    """Train ``model`` in place for ``steps`` Adam steps of L1 loss with a cosine learning rate."""
    torch.manual_seed(seed)
    device = torch.device(device)
    model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.99))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * step / steps))
    )
    result = FitResult()
    start = time.perf_counter()
    for step in range(1, steps + 1):
        lr_batch, hr_batch = sampler.batch(batch_size)
        loss = nn.functional.l1_loss(model(lr_batch.to(device)), hr_batch.to(device))
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite loss at step {step}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        result.losses.append(loss.item())
        if log is not None and log_every and step % log_every == 0:
            log(step, sum(result.losses[-log_every:]) / log_every)
    result.seconds = time.perf_counter() - start
    model.eval()
    return result
