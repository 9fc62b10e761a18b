"""AFD for SR (docs/design/distillation-methods.md §7, our adaptation): online peers plus feature-map discriminators.

Every step has three updates. (1) The DML step of ``mutual`` (each network: L1 to HR + ramped mutual L1).
(2) The adversarial feature step: network k's ``body_tail`` map, through its own 1×1 transform to the student's
width, should fool discriminator D_k (LSGAN: (D_k(T_k F_k) − 1)²), stepped by an Adam of its own at
``afd_lr`` (the paper's slower rate) over network k and T_k, decayed by the run's schedule like every other rate
(at a constant rate, Adam's normalised adversarial steps outlasted the decayed L1 steps and the networks
diverged in the last 15 % of a 1000-step run). (3) The discriminators: D_k takes network k−1's
(cyclically) transformed map as real and network k's as fake, both detached. The feature forward of (2) runs
after (1) changed the weights, as in the paper; its gradients and the discriminators' are taken by hand and
averaged over ranks (``ctx.step_with_gradients``), so DDP only sees the whole-network step (1).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from jdsr_cli.archs.taps import capture_features
from jdsr_cli.training.methods.base import MAIN, lr_factor
from jdsr_cli.training.methods.distill.mutual import MutualDistill
from jdsr_cli.training.methods.distill.teachers import tap_channels

if TYPE_CHECKING:
    from jdsr_cli.training.config import TrainConfig
    from jdsr_cli.training.method_api import Batch, Losses
    from jdsr_cli.training.step_context import StepContext

TAP = "body_tail"
DISCRIMINATORS = "discriminators"


def patch_discriminator(channels: int) -> nn.Sequential:
    """conv3×3 s2 → LReLU → conv3×3 s2 → LReLU → conv1×1 → one score per patch (a small PatchGAN on features)."""
    return nn.Sequential(nn.Conv2d(channels, channels, 3, 2, 1), nn.LeakyReLU(0.2),
                         nn.Conv2d(channels, channels, 3, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(channels, 1, 1))


class AdversarialDistill(MutualDistill):
    """``--kd-loss afd``: see the module docstring."""

    def __init__(self, config: TrainConfig) -> None:
        super().__init__(config)
        nets = [self.net, *self.peers]
        widths = [tap_channels(net, [TAP])[0][0] for net in nets]
        width = widths[0]
        self.transforms = nn.ModuleList(nn.Identity() if w == width else nn.Conv2d(w, width, 1) for w in widths)
        self.discriminators = nn.ModuleList(patch_discriminator(width) for _ in nets)
        self.adapters = nn.ModuleDict({"transforms": self.transforms, "discriminators": self.discriminators})
        groups = {f"{name}_adv": [*net.parameters(), *transform.parameters()]
                  for name, net, transform in zip(self._names(), nets, self.transforms, strict=True)}
        groups[DISCRIMINATORS] = list(self.discriminators.parameters())
        for name, params in groups.items():  # at afd_lr, decayed by the run's schedule
            optimizer = torch.optim.Adam(params, lr=self.opts.afd_lr, betas=(0.5, 0.999))
            self.add_optimizer(name, optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(config)))

    def _names(self) -> list[str]:
        return [MAIN, *(f"peer{i}" for i in range(len(self.peers)))]

    def describe(self) -> str:
        return super().describe().replace("(dml,", "(afd,")

    def trainable(self) -> dict[str, nn.Module]:
        return {**super().trainable(), "adapters": self.adapters}

    def train_step(self, batch: Batch, step: int, ctx: StepContext) -> Losses:
        losses = dict(super().train_step(batch, step, ctx))  # (1) the DML step
        nets = [self.net, *self.peers]
        features = []
        for net, transform in zip(nets, self.transforms, strict=True):  # raw networks: gradients by hand
            with ctx.autocast(), capture_features(net, [TAP]) as captured:  # type: ignore[arg-type]
                net(*ctx.formatted(batch.lr))
                features.append(transform(captured[TAP]).float())
        for i, name in enumerate(self._names()):  # (2) each network fools its discriminator
            fake = self.discriminators[i](features[i])
            loss_g = (fake - 1).square().mean()
            params = [p for group in self.optimizers()[f"{name}_adv"].param_groups for p in group["params"]]
            grads = torch.autograd.grad(loss_g, params, allow_unused=True, retain_graph=True)
            ctx.step_with_gradients(f"{name}_adv", [torch.zeros_like(p) if g is None else g
                                                   for p, g in zip(params, grads, strict=True)], loss_g)
            losses[f"{'' if name == MAIN else name + '_'}adv"] = loss_g.detach()
        loss_d = sum(self._discriminator_loss(i, features) for i in range(len(nets)))  # (3)
        params = list(self.discriminators.parameters())
        ctx.step_with_gradients(DISCRIMINATORS, torch.autograd.grad(loss_d, params), loss_d)  # type: ignore[arg-type]
        losses["disc"] = loss_d.detach()  # type: ignore[union-attr]
        return losses

    def _discriminator_loss(self, k: int, features: list[torch.Tensor]) -> torch.Tensor:
        """LSGAN: network k−1's map (cyclically) is real for D_k, network k's is fake; both detached."""
        real = self.discriminators[k](features[k - 1].detach())
        fake = self.discriminators[k](features[k].detach())
        return (real - 1).square().mean() + fake.square().mean()
