"""What a method's ``train_step`` may ask of the run: forward in its precision, a named optimizer step, the
cross-rank mean. The Trainer builds one per run, so methods never see DDP, autocast or devices directly."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from jdsr_cli.errors import JdsrError
from jdsr_cli.training.distributed import Distributed, mean_across_ranks

if TYPE_CHECKING:
    from pathlib import Path


class TrainingError(JdsrError):
    """The run cannot go on (non-finite loss, --init that matches nothing); the last good checkpoint is kept."""


class StepContext:
    """The run's precision, memory format, DDP wrappers and optimizers, as a method's ``train_step`` uses them.

    ``step`` is the step being trained (from 0); the Trainer sets it before each ``train_step``.
    """

    def __init__(self, *, device: torch.device, memory_format: torch.memory_format,
                 autocast_dtype: torch.dtype | None, dist: Distributed, run_dir: Path,
                 optimizers: dict[str, torch.optim.Optimizer],
                 schedulers: dict[str, torch.optim.lr_scheduler.LRScheduler],
                 wrapped: dict[int, nn.Module] | None = None) -> None:
        self.device = device
        self.memory_format = memory_format
        self.autocast_dtype = autocast_dtype
        self.dist = dist
        self.run_dir = run_dir
        self.optimizers = optimizers
        self.schedulers = schedulers
        self._wrapped = wrapped or {}  # id(trainable module) → its DDP wrapper
        self.step = 0

    def forward(self, module: nn.Module, *inputs: Any) -> Any:
        """``module(*inputs)`` under the run's autocast and memory format, through its DDP wrapper if any
        (a trainable module called otherwise would skip the gradient all-reduce). Losses belong in fp32."""
        model = self._wrapped.get(id(module), module)
        inputs = tuple(x.contiguous(memory_format=self.memory_format) if isinstance(x, torch.Tensor) and x.dim() == 4
                       else x for x in inputs)
        with torch.autocast(self.device.type, dtype=self.autocast_dtype or torch.float32,
                            enabled=self.autocast_dtype is not None):
            return model(*inputs)

    def backward_and_step(self, loss: torch.Tensor, optimizer: str) -> None:
        """Zero the named optimizer's gradients, backpropagate ``loss``, step it and its scheduler. A loss that
        is not finite on any rank stops every rank here, before any weight changes."""
        if not torch.isfinite(mean_across_ranks(self.dist, loss.detach())):
            raise TrainingError(
                f"non-finite loss at step {self.step + 1}; stopped. The last good checkpoint is in "
                f"{self.run_dir / 'last'} (try a lower --lr)"
            )
        opt = self.optimizers[optimizer]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if optimizer in self.schedulers:
            self.schedulers[optimizer].step()

    def mean_across_ranks(self, value: torch.Tensor | float) -> torch.Tensor:
        """The mean of ``value`` over all ranks (itself in a single process): for decisions every rank shares."""
        tensor = value.detach() if isinstance(value, torch.Tensor) else torch.tensor(float(value), device=self.device)
        return mean_across_ranks(self.dist, tensor)
