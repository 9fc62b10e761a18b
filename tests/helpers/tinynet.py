"""A tiny test architecture (conv, relu, conv, pixel shuffle) in a private registry, for checkpoint tests.

The loaders take the registry as a parameter, so the tests never depend on the real architectures.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from jdsr_cli.archs.base import SRNet
from jdsr_cli.archs.registry import ArchConfig, ArchRegistry, ArchSpec, SizeRequirement


class TinyNet(SRNet):
    """conv -> relu -> conv -> pixel shuffle, with a buffer, and optionally a tied alias module."""

    def __init__(self, scale: int = 2, features: int = 8, tied: bool = False) -> None:
        super().__init__()
        self.scale = scale
        self.feature_channels = features
        self.num_body_units = 1
        self.head = nn.Conv2d(3, features, 3, padding=1)
        self.tail = nn.Conv2d(features, 3 * scale * scale, 3, padding=1)
        self.shuffle = nn.PixelShuffle(scale)
        self.register_buffer("mean", torch.tensor([0.4, 0.45, 0.5]).view(1, 3, 1, 1))
        if tied:
            self.alias = self.head  # the same parameters under a second name (shared storage)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shuffle(self.tail(torch.relu(self.head(x - self.mean)))) + self.mean


def _tiny_expected_keys(tied: bool) -> set[str]:
    keys = {"head.weight", "head.bias", "tail.weight", "tail.bias", "mean"}
    return keys | ({"alias.weight", "alias.bias"} if tied else set())


def detect_tiny(state: Mapping[str, torch.Tensor]) -> dict[str, Any] | None:
    tied = "alias.weight" in state
    if set(state) != _tiny_expected_keys(tied):
        return None
    features = int(state["head.weight"].shape[0])
    out = int(state["tail.weight"].shape[0])
    scale = int(round(math.sqrt(out / 3)))
    if 3 * scale * scale != out or tuple(state["tail.weight"].shape[1:]) != (features, 3, 3):
        return None
    return {"scale": scale, "features": features, "tied": tied}


TINY_SPEC = ArchSpec(
    name="tiny",
    build=TinyNet,
    detect=detect_tiny,
    presets={"small": {"features": 8}},
    scales=(2, 3, 4),
    supports_fp16=True,
    supports_bf16=False,
    size=SizeRequirement(minimum=2, multiple_of=1),
    summary="test net",
)
TINY_REGISTRY = ArchRegistry((TINY_SPEC,))


def make_tiny(scale: int = 2, features: int = 8, tied: bool = False, seed: int = 0) -> TinyNet:
    torch.manual_seed(seed)
    return TinyNet(scale=scale, features=features, tied=tied).eval()


def tiny_config(scale: int = 2, features: int = 8, tied: bool = False) -> ArchConfig:
    return ArchConfig("tiny", scale, {"features": features, "tied": tied})


def sample_input(seed: int = 1) -> torch.Tensor:
    return torch.rand(1, 3, 6, 5, generator=torch.Generator().manual_seed(seed))


def same_outputs(a: nn.Module, b: nn.Module) -> bool:
    with torch.no_grad():
        return torch.equal(a(sample_input()), b(sample_input()))
