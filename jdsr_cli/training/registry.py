"""Training methods by name: ``--method NAME`` and the ``[NAME]`` TOML table look a method class up here.

The built-in methods are registered as 'module:Class' strings, so their names and tags (``method_names``,
``method_tags``, option checks, ``jdsr models list``) are known without importing torch; a class is imported the
first time it is used. Other methods (a test's, a plugin's) register the class itself with ``@register_method``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from jdsr_cli.errors import UsageError

if TYPE_CHECKING:
    from jdsr_cli.training.config import TrainConfig
    from jdsr_cli.training.method_api import TrainingMethod

T = TypeVar("T")

MethodFactory = Callable[["TrainConfig"], "TrainingMethod"]


@dataclass
class MethodEntry:
    """One registered method: its class (name, ``OPTIONS``, ``FIXED_ON_RESUME``, ``check_options``), the short
    tag ``jdsr models list`` shows for the models it trained, and, where the options pick a subclass to build
    (distill's online losses), the factory that builds it. Class and factory are 'module:attr' until first use."""

    cls: Any
    tag: str
    factory: Any = None


REGISTRY: dict[str, MethodEntry] = {
    "supervised": MethodEntry("jdsr_cli.training.methods.supervised:Supervised", "L1"),
    "superior-lr": MethodEntry("jdsr_cli.training.methods.superior_lr:SuperiorLR", "SLR"),
    "adversarial": MethodEntry("jdsr_cli.training.methods.adversarial:Adversarial", "GAN"),
    "jdsr": MethodEntry("jdsr_cli.training.methods.jdsr.method:JDSR", "JDSR"),
    "distill": MethodEntry("jdsr_cli.training.methods.distill.method:Distill", "KD",
                           "jdsr_cli.training.methods.distill:build"),
}


def register_method(name: str, tag: str | None = None) -> Callable[[T], T]:
    """Class decorator: ``@register_method("jdsr")`` makes ``--method jdsr`` build that class."""

    def register(cls: T) -> T:
        cls.name = name  # type: ignore[attr-defined]
        REGISTRY[name] = MethodEntry(cls, tag or name)
        return cls

    return register


def method_names() -> tuple[str, ...]:
    return tuple(REGISTRY)


def method_tags() -> dict[str, str]:
    """Each method's short tag (``supervised`` → ``L1``), without importing any method."""
    return {name: entry.tag for name, entry in REGISTRY.items()}


def method_class(name: str) -> type[TrainingMethod]:
    """The class registered as ``name`` (imported on first use); an unknown name is a UsageError."""
    entry = _entry(name)
    entry.cls = _imported(entry.cls)
    return entry.cls  # type: ignore[no-any-return]


def method_factory(name: str) -> MethodFactory:
    """What builds the method ``name`` from a config: its factory, or its class."""
    entry = _entry(name)
    if entry.factory is None:
        return method_class(name)
    entry.factory = _imported(entry.factory)
    return entry.factory  # type: ignore[no-any-return]


def _entry(name: str) -> MethodEntry:
    entry = REGISTRY.get(name)
    if entry is None:
        raise UsageError(f"--method {name!r}: choose {' or '.join(method_names())}")
    return entry


def _imported(target: Any) -> Any:
    if not isinstance(target, str):
        return target
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)
