"""Command-line flags → ``TrainConfig`` overrides, the one mapping ``jdsr train`` (and ``jdsr distill``) use.

A flag is named after its option (``--batch-size`` sets ``batch_size``); a flag not given is None and leaves
the TOML file's value or the default; a path becomes a string, as the config and ``config.toml`` hold it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from jdsr_cli.training.config import TrainConfig


def config_overrides(**flags: Any) -> dict[str, Any]:
    """``config_overrides(scale=2, out=Path("runs/x"), lr=None)`` → ``{"scale": 2, "out": "runs/x", "lr": None}``.

    A name that is not a TrainConfig option is a programming error (a TypeError), not a user's.
    """
    options = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(flags) - options)
    if unknown:
        raise TypeError(f"not training options: {', '.join(unknown)}")
    return {name: str(value) if isinstance(value, Path) else value for name, value in flags.items()}


def method_overrides(**flags: Any) -> dict[str, Any]:
    """Method flags (``--no-meta`` → ``meta=False``) → ``{"method_options": {...}}`` for ``load_config``, which
    overlays them on the method's TOML table; a flag not given (None) leaves the table's value."""
    given = {name: value for name, value in flags.items() if value is not None}
    return {"method_options": given} if given else {}


def flag_name(key: str, value: Any) -> str:
    """The command-line spelling of a method option: ``meta=False`` → ``--no-meta``."""
    flag = key.replace("_", "-")
    return f"--no-{flag}" if value is False else f"--{flag}"


def parse_gap_threshold(text: str | None) -> float | str | None:
    """``--gap-threshold``: a number of dB, or ``none`` (the gate off)."""
    if text is None or text.strip().lower() == "none":
        return None if text is None else "none"
    try:
        return float(text)
    except ValueError:
        from jdsr_cli.errors import UsageError

        raise UsageError(f"--gap-threshold {text!r}: a number of dB or none") from None


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
    from jdsr_cli.errors import UsageError

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
            list: "a list of strings"}[type(default)]
