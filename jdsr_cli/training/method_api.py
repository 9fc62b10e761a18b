"""The training-method contract: what a method must give the ``Trainer`` so the loop stays method-agnostic.

The Trainer owns data, devices, precision, DDP, EMA, checkpoints, resume, signals and logging. A method owns
its networks (``trainable`` ones, which the Trainer moves, wraps in DDP and saves; ``frozen`` ones, e.g. a
teacher, which it only moves), its named optimizers and schedulers, and one ``train_step`` that returns its
named losses. ``deployed()`` is the network EMA averages, validation scores and ``exports`` writes.
Every method derives from ``training.methods.base.MethodBase``, which gives the parts most methods leave as
they are (no frozen networks, every training image, no state, recipe or option checks of their own).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, Protocol

if TYPE_CHECKING:
    import torch
    from torch import nn

    from jdsr_cli.archs.registry import ArchConfig
    from jdsr_cli.training.config import TrainConfig
    from jdsr_cli.training.data import ImagePair
    from jdsr_cli.training.step_context import StepContext

Losses = dict[str, "torch.Tensor | float"]  # "loss" (or the first key) is the total shown in progress


class Batch(NamedTuple):
    """One training batch on the run's device: bicubic (or paired) LR patches and their HR patches."""

    lr: torch.Tensor
    hr: torch.Tensor


@dataclass
class InitReport:
    """What ``--init`` brought: tensors copied of the net's total, and each source checkpoint's lineage."""

    copied: int
    total: int
    sources: list[dict[str, Any]]


@dataclass
class Validation:
    """Validation scores: ``psnr`` picks the best checkpoint; ``extra`` is logged alongside."""

    psnr: float
    ssim: float
    images: int
    extra: dict[str, float] = field(default_factory=dict)


class TrainingMethod(Protocol):
    """A training method, registered by name in ``training.registry`` and built from the run's config."""

    name: ClassVar[str]
    OPTIONS: ClassVar[Mapping[str, Any]]  # the keys its own TOML table ([<name>]) may set, with defaults
    FIXED_ON_RESUME: ClassVar[tuple[str, ...]]  # the table's keys a resume may not change

    def __init__(self, config: TrainConfig) -> None: ...

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> None:
        """Check the values of its table (a UsageError naming ``[name] key``)."""
        ...

    def describe(self) -> str:
        """E.g. 'edsr ×2': names the run in messages."""
        ...

    def trainable(self) -> dict[str, nn.Module]:
        """Networks the optimizers update: saved in the state, wrapped in DDP (call them via ``ctx.forward``)."""
        ...

    def frozen(self) -> dict[str, nn.Module]:
        """Networks used but never updated (a teacher): not saved, not in EMA, DDP or any optimizer."""
        ...

    def deployed(self) -> nn.Module:
        """The network EMA averages, validation scores and ``exports`` writes (part of ``trainable``)."""
        ...

    def optimizers(self) -> dict[str, torch.optim.Optimizer]: ...

    def training_pairs(self, pairs: list[ImagePair]) -> list[ImagePair]:
        """The training images the Trainer samples its batches from; a method may keep some for itself (JDSR
        holds out a meta split). Called once, before the first step, with the same pairs on every rank."""
        ...

    def schedulers(self) -> dict[str, torch.optim.lr_scheduler.LRScheduler]:
        """Keyed like ``optimizers``; ``ctx.backward_and_step(loss, name)`` steps the one of that name."""
        ...

    def extra_state(self) -> dict[str, Any]:
        """A small state of its own kept across resumes (e.g. JDSR's gap gate); empty: none is written."""
        ...

    def load_extra_state(self, state: Mapping[str, Any]) -> None: ...

    def recipe_extra(self) -> dict[str, Any]:
        """What every checkpoint's training record adds (e.g. the teachers of a distillation)."""
        ...

    @property
    def validation_target(self) -> str:
        """What ``validate`` scores against: "HR", or e.g. "teacher" (named in the log's convention)."""
        ...

    def train_step(self, batch: Batch, step: int, ctx: StepContext) -> Losses:
        """One optimisation step (``step`` counts from 0); returns the named losses to log."""
        ...

    def initialise_from(self, spec: str) -> InitReport: ...

    def exports(self, deployed: nn.Module) -> dict[str, tuple[nn.Module, ArchConfig]]:
        """The checkpoints to write from (a copy of) the deployed network: part name ('' = the folder) → module."""
        ...

    def validate(self, deployed: nn.Module, pairs: list[Any], device: torch.device) -> Validation: ...
