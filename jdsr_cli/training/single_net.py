"""The default method shape: one trainable network, one Adam named "main" and the run's lr schedule.

``supervised`` and ``superior-lr`` are this shape; a subclass builds the net and says what it is fed and its
losses. The step is forward (run precision), losses, backward, Adam step, schedule step, exactly as the
Trainer did before methods owned their optimizers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

if TYPE_CHECKING:
    from jdsr_cli.training.config import TrainConfig
    from jdsr_cli.training.data import ImagePair
    from jdsr_cli.training.method_api import Batch, Losses
    from jdsr_cli.training.step_context import StepContext

MAIN = "main"  # the single optimizer's (and scheduler's) name; old training states map to it


def lr_factor(config: TrainConfig) -> Callable[[int], float]:
    """The schedule as a factor of ``--lr``: cosine to ``min_lr_ratio`` over the run, or multistep."""
    if config.schedule == "multistep":
        return lambda step: config.gamma ** sum(step >= m for m in config.milestones)
    floor = config.min_lr_ratio
    return lambda step: floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(step, config.steps) / config.steps))


def adam_with_schedule(params: Any, config: TrainConfig,
                       lr: float | None = None) -> tuple[torch.optim.Adam, torch.optim.lr_scheduler.LambdaLR]:
    """Adam (betas 0.9, 0.99) at ``lr`` (default ``--lr``) with the run's schedule: what every jdsr network
    trains with."""
    optimizer = torch.optim.Adam(params, lr=config.lr if lr is None else lr, betas=(0.9, 0.99))
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(config))


class SingleNetMethod:
    """Base class of a one-network method: subclasses set ``self.net`` in ``build`` and define the losses."""

    name: ClassVar[str] = ""
    OPTIONS: ClassVar[Mapping[str, Any]] = {}
    net: nn.Module

    def __init__(self, config: TrainConfig) -> None:
        self.options = {**self.OPTIONS, **config.method_options}
        self.build(config)
        optimizer, scheduler = adam_with_schedule(self.net.parameters(), config)
        self._optimizers = {MAIN: optimizer}
        self._schedulers = {MAIN: scheduler}

    def build(self, config: TrainConfig) -> None:
        """Build ``self.net`` (and whatever the method keeps), before the optimizer sees its parameters."""
        raise NotImplementedError

    def batch_input(self, lr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        """What ``net`` is fed: LR for an upscaler, HR for a round trip."""
        raise NotImplementedError

    def losses(self, output: Any, batch: Batch) -> Losses:
        """Named losses in fp32, the total (which is backpropagated) under "loss"."""
        raise NotImplementedError

    def trainable(self) -> dict[str, nn.Module]:
        return {"net": self.net}

    def frozen(self) -> dict[str, nn.Module]:
        return {}

    def deployed(self) -> nn.Module:
        return self.net

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return self._optimizers

    def schedulers(self) -> dict[str, torch.optim.lr_scheduler.LRScheduler]:
        return self._schedulers

    def training_pairs(self, pairs: list[ImagePair]) -> list[ImagePair]:
        return pairs

    def train_step(self, batch: Batch, step: int, ctx: StepContext) -> Losses:
        output = ctx.forward(self.net, self.batch_input(batch.lr, batch.hr))
        losses = self.losses(output, batch)
        ctx.backward_and_step(losses["loss"], MAIN)  # type: ignore[arg-type]
        return losses
