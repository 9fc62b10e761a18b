"""The networks a method builds from the run's options, and ``--init``: where a run's weights start from."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from jdsr_cli.archs import REGISTRY
from jdsr_cli.archs.registry import ArchConfig
from jdsr_cli.checkpoints.lineage import init_record
from jdsr_cli.checkpoints.resolve import resolve_model
from jdsr_cli.errors import UsageError
from jdsr_cli.training.method_api import InitReport

if TYPE_CHECKING:
    from jdsr_cli.checkpoints.load import LoadedModel
    from jdsr_cli.training.config import TrainConfig


def build_net(config: ArchConfig) -> nn.Module:
    """A fresh registry network (its own initialisation, from the torch RNG)."""
    return REGISTRY.build(config)


def arch_config(config: TrainConfig) -> ArchConfig:
    """The upscaler the run trains: ``--arch``, ``--preset`` and ``arch_kwargs`` (or the ``--init`` model's
    layout when it is of the same architecture and the run names neither a preset nor build arguments)."""
    spec = REGISTRY.get(config.arch)
    if spec.direction != "up":
        raise UsageError(f"--arch {config.arch} is a downscaler; train it with --method superior-lr")
    kwargs = spec.preset_kwargs(config.preset)
    kwargs.update(config.arch_kwargs)
    if config.init and config.preset is None and not config.arch_kwargs:
        kwargs = init_layout(config.init, config.arch) or kwargs
    return ArchConfig(config.arch, config.scale, kwargs)


def init_layout(spec: str, arch: str) -> dict[str, Any] | None:
    """The build arguments of the ``--init`` model when it is of the same architecture and the run names neither a
    preset nor build arguments: fine-tuning ``imdn-x4`` gives an ``imdn-x4`` (its static channel statistics too)."""
    loaded = load_init(spec)
    return dict(loaded.config.kwargs) if loaded.config.arch == arch else None


def load_init(spec: str) -> LoadedModel:
    """What ``--init`` names: a checkpoint file or folder, an hf:// reference or a bundled model's name."""
    return resolve_model(spec, scale=None, option="--init")


def copy_matching(source: Mapping[str, torch.Tensor], target: nn.Module) -> int:
    """Load the tensors whose names and shapes match (e.g. a ×4 body into a ×2 model); returns how many."""
    own = target.state_dict()
    shared = {k: v for k, v in source.items() if k in own and own[k].shape == v.shape}
    target.load_state_dict(shared, strict=False)
    return len(shared)


def initialise_net(net: nn.Module, spec: str) -> InitReport:
    """``--init`` for a method that deploys one SR network: copy what matches, record where it came from."""
    loaded = load_init(spec)
    copied = copy_matching(loaded.model.state_dict(), net)
    return InitReport(copied, len(net.state_dict()), [init_record(loaded)])
