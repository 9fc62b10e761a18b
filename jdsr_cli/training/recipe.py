"""What each checkpoint of a run records about how it was trained (``config.json`` → ``training``): the
method, step, time, hardware, the commands that started and resumed the run, its ``--init`` lineage and
options, so a checkpoint found alone says how to reproduce it."""

from __future__ import annotations

import json
import platform
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from jdsr_cli.training.config import TrainConfig


def training_recipe(config: TrainConfig, *, step: int, train_seconds: float, device: torch.device,
                    commands: list[str], init_from: list[dict[str, Any]],
                    extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``training`` record of a checkpoint saved at ``step`` (JSON-ready); ``extra`` is what the method adds
    (``recipe_extra()``, e.g. distillation's teachers)."""
    options = {k: v for k, v in vars(config).items() if v is not None and (v or k != "method_options")}
    return {"method": config.method, "step": step, "train_seconds": round(train_seconds),
            "hardware": hardware(device), "command": commands[0], "resumed_with": commands[1:],
            **({"init_from": init_from} if init_from else {}), **json.loads(json.dumps(extra or {})),
            "config": json.loads(json.dumps(options))}


def command_line() -> str:
    """How this process was started, e.g. 'jdsr train --config configs/imdn-x4.toml' (for the recipe)."""
    program = Path(sys.argv[0]).name if sys.argv else "python"
    if program in ("__main__.py", "-m"):
        program = "python -m jdsr_cli"
    return shlex.join([program, *sys.argv[1:]])


def hardware(device: torch.device) -> str:
    """E.g. 'cpu: x86_64, 2 threads' or 'cuda: NVIDIA H100 80GB HBM3' (recorded with each checkpoint)."""
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return f"{device.type}: {platform.machine()}, {torch.get_num_threads()} threads"
