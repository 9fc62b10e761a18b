"""``supervised``: one SR network trained with L1 to HR, and the one-network shape it shares with ``superior-lr``.

``net`` is an ``nn.Module`` whose ``forward`` takes the method's batch input, so DDP sees every parameter used;
for ``supervised`` it is the network itself, so the run folder's ``best/`` and ``last/`` are ordinary
checkpoints that ``jdsr upscale`` loads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from jdsr_cli.training.methods.base import MAIN, MethodBase, adam_with_schedule
from jdsr_cli.training.methods.nets import arch_config, build_net, initialise_net
from jdsr_cli.training.methods.scoring import score_upscaler

if TYPE_CHECKING:
    from jdsr_cli.archs.registry import ArchConfig
    from jdsr_cli.training.config import TrainConfig
    from jdsr_cli.training.method_api import Batch, InitReport, Losses, Validation
    from jdsr_cli.training.step_context import StepContext


class SingleNetMethod(MethodBase):
    """One trainable network, one Adam named "main" and the run's lr schedule: a subclass builds ``self.net`` and
    says what it is fed and its losses. The step is forward (run precision), losses, backward, Adam step,
    schedule step."""

    net: nn.Module

    def __init__(self, config: TrainConfig) -> None:
        super().__init__(config)
        self.build(config)
        self.add_optimizer(MAIN, *adam_with_schedule(self.net.parameters(), config))

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

    def deployed(self) -> nn.Module:
        return self.net

    def train_step(self, batch: Batch, step: int, ctx: StepContext) -> Losses:
        output = ctx.forward(self.net, self.batch_input(batch.lr, batch.hr))
        losses = self.losses(output, batch)
        ctx.backward_and_step(losses["loss"], MAIN)  # type: ignore[arg-type]
        return losses


class Supervised(SingleNetMethod):
    """One SR network trained with L1 to HR."""

    name = "supervised"

    def build(self, config: TrainConfig) -> None:
        self.scale = config.scale
        self.arch_config = arch_config(config)
        self.net = build_net(self.arch_config)

    def describe(self) -> str:
        return f"{self.arch_config.arch} ×{self.scale}"

    def batch_input(self, lr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        return lr

    def losses(self, output: torch.Tensor, batch: Batch) -> Losses:
        return {"loss": nn.functional.l1_loss(output.float(), batch.hr)}

    def initialise_from(self, spec: str) -> InitReport:
        return initialise_net(self.net, spec)

    def exports(self, net: nn.Module) -> dict[str, tuple[nn.Module, ArchConfig]]:
        return {"": (net, self.arch_config)}

    def validate(self, net: nn.Module, pairs: list[Any], device: torch.device) -> Validation:
        return score_upscaler(net, pairs, device, self.scale)
