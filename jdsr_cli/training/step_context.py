"""What a method's ``train_step`` may ask of the run: forward in its precision, a named optimizer step, the
cross-rank mean. The Trainer builds one per run, so methods never see DDP, autocast or devices directly."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from jdsr_cli.errors import JdsrError
from jdsr_cli.process.launch import Launch
from jdsr_cli.training.distributed import mean_across_ranks
from jdsr_cli.training.run_folder import RunFolder

if TYPE_CHECKING:
    from pathlib import Path


class TrainingError(JdsrError):
    """The run cannot go on (non-finite loss, --init that matches nothing); the last good checkpoint is kept."""


class StepContext:
    """The run's precision, memory format, DDP wrappers and optimizers, as a method's ``train_step`` uses them.

    ``step`` is the step being trained (from 0); the Trainer sets it before each ``train_step``.
    """

    def __init__(self, *, device: torch.device, memory_format: torch.memory_format,
                 autocast_dtype: torch.dtype | None, dist: Launch, run_dir: Path,
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
        with self.autocast():
            return model(*self.formatted(*inputs))

    def formatted(self, *inputs: Any) -> tuple[Any, ...]:
        """Image batches in the run's memory format (for a module called without ``forward``)."""
        return tuple(x.contiguous(memory_format=self.memory_format) if isinstance(x, torch.Tensor) and x.dim() == 4
                     else x for x in inputs)

    @contextmanager
    def autocast(self) -> Iterator[None]:
        """The run's precision, for work that does not go through ``forward`` (e.g. ``functional_call``): such
        calls bypass DDP, so use them only for what needs no gradient sync (a virtual look-ahead step)."""
        with torch.autocast(self.device.type, dtype=self.autocast_dtype or torch.float32,
                            enabled=self.autocast_dtype is not None):
            yield

    def backward_and_step(self, loss: torch.Tensor, optimizer: str) -> None:
        """Zero the named optimizer's gradients, backpropagate ``loss`` into that optimizer's parameters only
        (another network the loss touches keeps its gradients), step it and its scheduler. A loss that is not
        finite on any rank stops every rank here, before any weight changes."""
        self._check_finite(loss, optimizer)
        opt = self.optimizers[optimizer]
        opt.zero_grad(set_to_none=True)
        loss.backward(inputs=_parameters(opt))
        self._step(optimizer)

    def step_with_gradients(self, optimizer: str, gradients: Sequence[torch.Tensor], loss: torch.Tensor) -> None:
        """Step the named optimizer with gradients computed by hand (``torch.autograd.grad``, in the order of its
        parameters), averaged over the ranks here since they bypassed DDP; ``loss`` is checked like a backward's."""
        self._check_finite(loss, optimizer)
        params = _parameters(self.optimizers[optimizer])
        if len(params) != len(gradients):
            raise ValueError(f"optimizer {optimizer!r} has {len(params)} parameters, got {len(gradients)} gradients")
        for param, grad in zip(params, gradients, strict=True):
            param.grad = mean_across_ranks(self.dist, grad.detach().to(param.dtype))
        self._step(optimizer)

    def _check_finite(self, loss: torch.Tensor, optimizer: str) -> None:
        if not torch.isfinite(mean_across_ranks(self.dist, loss.detach().float())):
            what = "loss" if optimizer == "main" else f"{optimizer} loss"
            raise TrainingError(
                f"non-finite {what} at step {self.step + 1}; stopped. The last good checkpoint is in "
                f"{RunFolder(self.run_dir).last} (try a lower --lr)"
            )

    def _step(self, optimizer: str) -> None:
        self.optimizers[optimizer].step()
        if optimizer in self.schedulers:
            self.schedulers[optimizer].step()

    def mean_gradients(self, grads: Sequence[torch.Tensor], differentiable: bool = False) -> list[torch.Tensor]:
        """Each tensor averaged over the ranks (as DDP averages gradients), for gradients taken by hand, e.g. a
        look-ahead step every rank must take alike; ``differentiable`` keeps the graph through the reduction."""
        if self.dist.world == 1:
            return list(grads)
        if differentiable:
            # local: optional, torch.distributed.nn needs a torch built with distributed support (torchrun only)
            from torch.distributed.nn.functional import all_reduce

            return [all_reduce(g) / self.dist.world for g in grads]
        return [mean_across_ranks(self.dist, g.detach()) for g in grads]

    def learning_rate(self, optimizer: str) -> float:
        """The named optimizer's current learning rate (its first parameter group's)."""
        return float(self.optimizers[optimizer].param_groups[0]["lr"])

    def mean_across_ranks(self, value: torch.Tensor | float) -> torch.Tensor:
        """The mean of ``value`` over all ranks (itself in a single process): for decisions every rank shares."""
        tensor = value.detach() if isinstance(value, torch.Tensor) else torch.tensor(float(value), device=self.device)
        return mean_across_ranks(self.dist, tensor)


def _parameters(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    """The optimizer's trainable parameters (a frozen one inside a trainable net, e.g. SPAN's derived
    ``eval_conv``, gets no gradient)."""
    return [p for group in optimizer.param_groups for p in group["params"] if p.requires_grad]
