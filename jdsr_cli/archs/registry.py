"""Architecture registry: self-describing specs, model building, and state-dict detection.

The registry is an immutable mapping built from explicit imports in ``jdsr_cli.archs`` (no import-time
scanning, no mutable global): adding an architecture means adding its ``SPEC`` to that tuple.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from jdsr_cli.errors import UnknownArchitectureError, UsageError

if TYPE_CHECKING:
    import torch

    from jdsr_cli.archs.base import SRNet


@dataclass(frozen=True)
class SizeRequirement:
    """Input sizes an architecture accepts: at least ``minimum`` and a multiple of ``multiple_of``."""

    minimum: int = 1
    multiple_of: int = 1


@dataclass(frozen=True)
class ArchSpec:
    """Everything the engine and the loaders need to know about one architecture.

    ``build(scale=..., **kwargs)`` returns an ``SRNet``. ``detect(state_dict)`` returns the build
    arguments (``{"scale": s, **kwargs}``) that reproduce a state dict's names and shapes exactly, or
    ``None`` if the state dict is not of this architecture.
    """

    name: str
    build: Callable[..., SRNet]
    detect: Callable[[Mapping[str, torch.Tensor]], dict[str, Any] | None]
    presets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    scales: tuple[int, ...] = (2, 3, 4)
    supports_fp16: bool = True
    supports_bf16: bool = True
    size: SizeRequirement = SizeRequirement()
    #: "up": a super-resolution network (output ``scale`` times larger); "down": a learned downscaler.
    direction: str = "up"
    summary: str = ""
    reference: str = ""
    #: the known model family a detected file belongs to (``jdsr models inspect``)
    family: str = ""

    def preset_kwargs(self, preset: str | None) -> dict[str, Any]:
        """The build arguments of a named preset (none for None); an unknown name is the user's error."""
        if preset is None:
            return {}
        if preset not in self.presets:
            raise UsageError(f"{self.name!r} has no preset {preset!r}; presets: {', '.join(self.presets)}")
        return dict(self.presets[preset])


@dataclass(frozen=True)
class ArchConfig:
    """The serialisable recipe that rebuilds a model without guessing (stored in ``config.json``)."""

    arch: str
    scale: int
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"arch": self.arch, "scale": self.scale, "kwargs": dict(self.kwargs)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ArchConfig:
        return cls(arch=str(data["arch"]), scale=int(data["scale"]), kwargs=dict(data.get("kwargs", {})))


class ArchRegistry:
    """Read-only lookup over a fixed tuple of specs; detection tries them in order."""

    def __init__(self, specs: tuple[ArchSpec, ...]) -> None:
        self._specs: dict[str, ArchSpec] = {}
        for spec in specs:
            if spec.name in self._specs:
                raise ValueError(f"duplicate architecture name {spec.name!r}")
            self._specs[spec.name] = spec

    def names(self) -> list[str]:
        return list(self._specs)

    def specs(self) -> list[ArchSpec]:
        return list(self._specs.values())

    def get(self, name: str) -> ArchSpec:
        try:
            return self._specs[name]
        except KeyError:
            raise UsageError(
                f"unknown architecture {name!r}; known: {', '.join(self._specs)}"
            ) from None

    def build(self, config: ArchConfig) -> SRNet:
        spec = self.get(config.arch)
        if config.scale not in spec.scales:
            raise UsageError(
                f"architecture {spec.name!r} supports scales {spec.scales}, not {config.scale}"
            )
        return spec.build(scale=config.scale, **dict(config.kwargs))

    def build_preset(self, name: str, preset: str, scale: int, **overrides: Any) -> SRNet:
        kwargs = {**self.get(name).preset_kwargs(preset), **overrides}
        return self.build(ArchConfig(name, scale, kwargs))

    def detect(self, state_dict: Mapping[str, torch.Tensor]) -> ArchConfig:
        """Match a state dict against every spec; raise with a summary of what was found."""
        for spec in self._specs.values():
            found = spec.detect(state_dict)
            if found is not None:
                found = dict(found)
                scale = int(found.pop("scale"))
                return ArchConfig(spec.name, scale, found)
        raise UnknownArchitectureError(
            "no registered architecture matches this state dict "
            f"({len(state_dict)} tensors: {describe_state_dict(state_dict)}); "
            f"known architectures: {', '.join(self._specs)}"
        )


def describe_state_dict(state_dict: Mapping[str, torch.Tensor], limit: int = 6) -> str:
    """A short, readable summary of a state dict's first tensor names and shapes."""
    items = [f"{name} {tuple(t.shape)}" for name, t in list(state_dict.items())[:limit]]
    more = len(state_dict) - len(items)
    return ", ".join(items) + (f", ... (+{more} more)" if more > 0 else "")
