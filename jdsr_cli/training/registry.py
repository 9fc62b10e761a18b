"""Training methods by name: ``--method NAME`` and the ``[NAME]`` TOML table look a method class up here.

The built-in methods are registered as 'module:Class' strings, so their names (``config.METHODS``, option
checks) are known without importing torch; a class is imported the first time it is built. Other methods
(a test's, a plugin's) register the class itself with ``@register_method``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from jdsr_cli.errors import UsageError

if TYPE_CHECKING:
    from jdsr_cli.training.method_api import TrainingMethod

T = TypeVar("T")

REGISTRY: dict[str, Any] = {  # name → class, or 'module:Class' until first use
    "supervised": "jdsr_cli.training.methods:Supervised",
    "superior-lr": "jdsr_cli.training.methods:SuperiorLR",
    "jdsr": "jdsr_cli.training.jdsr.method:JDSR",
    "distill": "jdsr_cli.training.distill.method:Distill",
}


def register_method(name: str) -> Callable[[T], T]:
    """Class decorator: ``@register_method("jdsr")`` makes ``--method jdsr`` build that class."""

    def register(cls: T) -> T:
        cls.name = name  # type: ignore[attr-defined]
        REGISTRY[name] = cls
        return cls

    return register


def method_names() -> tuple[str, ...]:
    return tuple(REGISTRY)


def method_class(name: str) -> type[TrainingMethod]:
    """The class registered as ``name`` (imported on first use); an unknown name is a UsageError."""
    entry = REGISTRY.get(name)
    if entry is None:
        raise UsageError(f"--method {name!r}: choose {' or '.join(method_names())}")
    if isinstance(entry, str):
        module, _, attr = entry.partition(":")
        entry = REGISTRY[name] = getattr(importlib.import_module(module), attr)
    return entry  # type: ignore[no-any-return]
