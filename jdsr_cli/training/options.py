"""Command-line flags → ``TrainConfig`` overrides, the one mapping ``jdsr train`` (and ``jdsr distill``) use.

A flag is named after its option (``--batch-size`` sets ``batch_size``); a flag not given is None and leaves
the TOML file's value or the default; a path becomes a string, as the config and ``config.toml`` hold it.
"""

from __future__ import annotations

import dataclasses
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
