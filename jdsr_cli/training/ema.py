"""EMA weights of the deployed network: what ``best/`` and ``last/`` hold and validation scores when on."""

from __future__ import annotations

import copy

import torch
from torch import nn


def ema_copy(deployed: nn.Module) -> nn.Module:
    """A frozen copy of the deployed network only (never a frozen teacher or a helper network)."""
    return copy.deepcopy(deployed).requires_grad_(False)


def ema_decay_at(decay: float, step: int) -> float:
    """EMA decay with a warm-up: min(decay, (1 + step) / (10 + step)).

    A plain 0.999 EMA still holds 37% of the random initial weights after 1000 steps (0.999^1000), so
    early validations and short runs would score the EMA far below the trained weights; the warm-up
    forgets the start quickly and reaches the nominal decay after ~9000 steps (for 0.999).
    """
    return min(decay, (1 + step) / (10 + step))


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float, step: int) -> None:
    """Move each EMA parameter towards the model's by 1 - decay (warmed up, ``ema_decay_at``)."""
    weight = 1 - ema_decay_at(decay, step)
    for ema_p, p in zip(ema.parameters(), model.parameters(), strict=True):
        ema_p.lerp_(p, weight)
