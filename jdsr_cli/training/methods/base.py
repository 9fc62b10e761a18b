"""The one base class of every training method: the contract's optional parts as plain methods with defaults.

A method owns its networks, its named optimizers and schedulers and one ``train_step``
(``training.method_api.TrainingMethod``). ``MethodBase`` gives what most methods share: the run's config, the
optimizers by name (``add_optimizer``), no frozen networks, every training image, no state, recipe or option
checks of its own. A subclass overrides what it needs; the Trainer calls every part, never ``getattr``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import torch

if TYPE_CHECKING:
    from torch import nn

    from jdsr_cli.archs.registry import ArchConfig
    from jdsr_cli.training.config import TrainConfig
    from jdsr_cli.training.data import ImagePair
    from jdsr_cli.training.method_api import Batch, InitReport, Losses, Validation
    from jdsr_cli.training.step_context import StepContext

MAIN = "main"  # a one-network method's optimizer (and scheduler); old training states map to it


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


class MethodBase:
    """Base class of a training method, registered by name in ``training.registry``."""

    name: ClassVar[str] = ""
    OPTIONS: ClassVar[Mapping[str, Any]] = {}  # the keys of its TOML table ([<name>]), with their defaults
    FIXED_ON_RESUME: ClassVar[tuple[str, ...]] = ()  # the table's keys a resume may not change

    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        self.options: dict[str, Any] = {**self.OPTIONS, **config.method_options}
        self._optimizers: dict[str, torch.optim.Optimizer] = {}
        self._schedulers: dict[str, torch.optim.lr_scheduler.LRScheduler] = {}

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> None:
        """Check the values of the method's table (its keys are checked against ``OPTIONS`` before)."""

    # ---- optimizers --------------------------------------------------------------------------------
    def add_optimizer(self, name: str, optimizer: torch.optim.Optimizer,
                      scheduler: torch.optim.lr_scheduler.LRScheduler) -> None:
        """Register an optimizer and its scheduler under ``name`` (``ctx.backward_and_step(loss, name)``)."""
        self._optimizers[name] = optimizer
        self._schedulers[name] = scheduler

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return self._optimizers

    def schedulers(self) -> dict[str, torch.optim.lr_scheduler.LRScheduler]:
        return self._schedulers

    # ---- the parts a method may leave as they are -----------------------------------------------------
    def frozen(self) -> dict[str, nn.Module]:
        """Networks used but never updated (a teacher); none by default."""
        return {}

    def training_pairs(self, pairs: list[ImagePair]) -> list[ImagePair]:
        """The images the Trainer samples batches from; all of them by default."""
        return pairs

    def extra_state(self) -> dict[str, Any]:
        """A small state of the method's own, kept across resumes (empty: nothing is written)."""
        return {}

    def load_extra_state(self, state: Mapping[str, Any]) -> None:
        """Take back what ``extra_state`` saved (``{}`` for a state that holds none)."""

    def recipe_extra(self) -> dict[str, Any]:
        """What every checkpoint's training record adds (e.g. a distillation's teachers)."""
        return {}

    @property
    def validation_target(self) -> str:
        """What ``validate`` scores against, named in the log: the HR (a distillation may score to its teacher)."""
        return "HR"

    # ---- the parts every method defines ------------------------------------------------------------
    def describe(self) -> str:
        raise NotImplementedError

    def trainable(self) -> dict[str, nn.Module]:
        raise NotImplementedError

    def deployed(self) -> nn.Module:
        raise NotImplementedError

    def train_step(self, batch: Batch, step: int, ctx: StepContext) -> Losses:
        raise NotImplementedError

    def initialise_from(self, spec: str) -> InitReport:
        raise NotImplementedError

    def exports(self, deployed: nn.Module) -> dict[str, tuple[nn.Module, ArchConfig]]:
        raise NotImplementedError

    def validate(self, deployed: nn.Module, pairs: list[Any], device: torch.device) -> Validation:
        raise NotImplementedError
