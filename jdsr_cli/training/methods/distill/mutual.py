"""DML for SR (docs/design/distillation-methods.md §10, our adaptation): the student and K−1 peers learn together.

Each network i minimises ``w_hr·L1(ŷ_i, HR) + w·(1/(K−1))·Σ_{j≠i} L1(ŷ_i, sg(ŷ_j))``, w = ``w_kd`` ramped up
linearly over the first ``dml_ramp`` of the run; all outputs are computed before any network steps
(simultaneous updates), each network with its own Adam. The peers are the ``--teacher`` architectures, from
scratch (the paper's cohort) or from their weights (``peer_init = "teacher"``); only the student is exported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from jdsr_cli.archs import REGISTRY
from jdsr_cli.training.methods.base import MAIN, adam_with_schedule
from jdsr_cli.training.methods.distill.method import Distill

if TYPE_CHECKING:
    from jdsr_cli.training.config import TrainConfig
    from jdsr_cli.training.method_api import Batch, Losses
    from jdsr_cli.training.step_context import StepContext


class MutualDistill(Distill):
    """``--kd-loss dml``: see the module docstring."""

    def __init__(self, config: TrainConfig) -> None:
        super().__init__(config)
        self.peers: list[nn.Module] = []
        for loaded in self.loaded_teachers:
            peer = REGISTRY.build(loaded.config)
            if self.opts.peer_init == "teacher":
                peer.load_state_dict(loaded.model.state_dict())
            self.peers.append(peer.train())
        for i, peer in enumerate(self.peers):
            self.add_optimizer(f"peer{i}", *adam_with_schedule(peer.parameters(), config))
        self.teachers = []  # nothing frozen: the cohort trains

    def describe(self) -> str:
        names = ", ".join(loaded.name for loaded in self.loaded_teachers)
        return f"{self.arch_config.arch} ×{self.scale} with peers like {names} (dml, peers from {self.opts.peer_init})"

    def trainable(self) -> dict[str, nn.Module]:
        return {"student": self.student, **{f"peer{i}": peer for i, peer in enumerate(self.peers)}}

    def frozen(self) -> dict[str, nn.Module]:
        return {}

    def train_step(self, batch: Batch, step: int, ctx: StepContext) -> Losses:
        o = self.opts
        ramp = o.dml_ramp * self.config.steps
        weight = o.w_kd * (min(1.0, step / ramp) if ramp > 0 else 1.0)
        outputs = [ctx.forward(self.student, batch.lr, None)[0].float(),
                   *(ctx.forward(peer, batch.lr).float() for peer in self.peers)]
        names = [MAIN, *(f"peer{i}" for i in range(len(self.peers)))]
        losses: dict[str, torch.Tensor | float] = {"dml_w": weight}
        for i, (name, output) in enumerate(zip(names, outputs, strict=True)):
            others = [other.detach() for j, other in enumerate(outputs) if j != i]
            l1 = nn.functional.l1_loss(output, batch.hr)
            mutual = sum(nn.functional.l1_loss(output, other) for other in others) / len(others)
            total = o.w_hr * l1 + weight * mutual
            ctx.backward_and_step(total, name)  # type: ignore[arg-type]
            key = "" if name == MAIN else f"{name}_"
            losses.update({f"{key}loss" if key else "loss": total.detach(), f"{key}l1": l1.detach(),
                           f"{key}mutual": mutual.detach()})  # type: ignore[union-attr]
        return {"loss": losses.pop("loss"), **losses}
