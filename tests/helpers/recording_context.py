"""The part of StepContext the JDSR meta step uses, in one process, recording the generator's gradients."""

from __future__ import annotations

import contextlib
from typing import Any

import torch


class RecordingContext:
    def __init__(self) -> None:
        self.gradients: list[torch.Tensor] = []

    def autocast(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    def formatted(self, *inputs: Any) -> tuple[Any, ...]:
        return inputs

    def mean_gradients(self, grads, differentiable: bool = False):  # type: ignore[no-untyped-def]
        return list(grads)

    def step_with_gradients(self, name: str, grads, loss) -> None:  # type: ignore[no-untyped-def]
        assert name == "generator" and torch.isfinite(loss)
        self.gradients = [g.detach().clone() for g in grads]

    def flat(self) -> torch.Tensor:
        return torch.cat([g.flatten() for g in self.gradients])
