"""A method's TOML table (``[jdsr]``, ``[distill]``, ``[superior-lr]``): its values read as attributes, and one
type check for every table."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping
from typing import Any

from jdsr_cli.errors import UsageError


@dataclasses.dataclass(frozen=True)
class TableOptions:
    """A method's TOML table (defaults overlaid with the run's values), read as attributes: ``opts.meta``."""

    values: Mapping[str, Any]

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None


def check_table_types(table: str, defaults: Mapping[str, Any], values: Mapping[str, Any],
                      skip: Collection[str] = ()) -> None:
    """Every value of the table has its default's type (an int counts as a float; a list holds strings), or one
    UsageError naming ``[table] key``; ``skip`` names keys the method checks itself."""
    for key, default in defaults.items():
        if key not in skip and not _same_kind(values[key], default):
            raise UsageError(f"[{table}] {key} = {values[key]!r}: expected {_kind(default)}")


def _same_kind(value: Any, default: Any) -> bool:
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if isinstance(default, float):
        return isinstance(value, (int, float))
    if isinstance(default, list):
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    return isinstance(value, type(default))


def _kind(default: Any) -> str:
    return {bool: "true or false", float: "a number", int: "a whole number", str: "a string",
            list: "a list of strings", dict: "a table"}[type(default)]
