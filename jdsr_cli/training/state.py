"""The method's part of ``training_state.pt``: its trainable networks, optimizers and schedulers by name.

A method may add its own small state (``extra_state()`` / ``load_extra_state()``, e.g. JDSR's gap gate) under
"method". Frozen networks are never written (they come from their own checkpoints). States written before methods
owned their optimizers hold one ``model``, ``optimizer`` and ``scheduler``; they still resume into a
method with one trainable network and one optimizer (``supervised``, ``superior-lr``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from jdsr_cli.training.method_api import TrainingMethod

PARTS = ("trainable", "optimizers", "schedulers")
LEGACY = {"trainable": "model", "optimizers": "optimizer", "schedulers": "scheduler"}


def method_state(method: TrainingMethod) -> dict[str, Any]:
    """``{"trainable": {name: state_dict}, "optimizers": {...}, "schedulers": {...}}``."""
    state = {
        "trainable": {name: module.state_dict() for name, module in method.trainable().items()},
        "optimizers": {name: opt.state_dict() for name, opt in method.optimizers().items()},
        "schedulers": {name: sched.state_dict() for name, sched in method.schedulers().items()},
    }
    extra = method.extra_state()  # e.g. JDSR's last gap measurement
    if extra:
        state["method"] = extra
    return state


def load_method_state(method: TrainingMethod, state: dict[str, Any]) -> None:
    """Load every named part; a name missing or extra on either side raises KeyError (the state does not fit)."""
    parts = _upgraded(method, state)
    targets = {"trainable": method.trainable(), "optimizers": method.optimizers(), "schedulers": method.schedulers()}
    for part, objects in targets.items():
        saved = parts[part]
        if set(saved) != set(objects):
            raise KeyError(f"{part}: saved {sorted(saved)}, the method has {sorted(objects)}")
        for name, target in objects.items():
            target.load_state_dict(saved[name])
    method.load_extra_state(state.get("method", {}))


def _upgraded(method: TrainingMethod, state: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The named parts, mapping an old single-network state onto the method's only network and optimizer."""
    if "trainable" in state:
        return {part: state[part] for part in PARTS}
    names = {"trainable": list(method.trainable()), "optimizers": list(method.optimizers()),
             "schedulers": list(method.schedulers())}
    if any(len(found) != 1 for found in names.values()):
        raise KeyError("an old single-network state cannot fill this method")
    return {part: {names[part][0]: state[LEGACY[part]]} for part in PARTS}


def to_cpu(value: Any) -> Any:
    """Move every tensor of a nested state to the CPU, so a run resumes on any device."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: to_cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_cpu(v) for v in value)
    return value
