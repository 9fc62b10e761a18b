"""``adversarial``: L1 to the target plus the adversarial term of a small discriminator (ESRGAN's relativistic
average GAN; a patch or a U-Net judge, ``judges.py``), so the network draws texture where L1 alone averages it
away.

The target is the batch's HR: the images of a folder, or a teacher's outputs (``jdsr distill-cache`` writes
them; ``jdsr train CACHE/target --lr-dir CACHE/lr --method adversarial``). With a teacher's outputs the
discriminator learns to tell the student's output from the teacher's, which pushes the student towards the
teacher's texture and needs no HR at all: the CPU form of issue 29 §3's "adversarial term" (docs/training.md).

The discriminator trains with its own Adam (``disc_lr``, the run's schedule), its gradients taken by hand and
averaged over the ranks like AFD's (``ctx.step_with_gradients``); it is saved in the training state and dropped
from every checkpoint. For the first ``warmup`` steps the network learns by L1 alone while the discriminator
already trains on its outputs, so the adversarial term starts with a judge that can tell the two apart (a fresh
one pushes the network in near-random directions; on the 2,160-pair teacher cache its loss was still near log 2
after 600 steps of both learning together).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.nn.functional import binary_cross_entropy_with_logits, l1_loss

from jdsr_cli.errors import UsageError
from jdsr_cli.training.methods.base import MAIN, adam_with_schedule
from jdsr_cli.training.methods.judges import ARCHS, NORMS, build_judge
from jdsr_cli.training.methods.supervised import Supervised
from jdsr_cli.training.methods.table import check_table_types
from jdsr_cli.training.methods.texture import texture_loss

if TYPE_CHECKING:
    from jdsr_cli.training.config import TrainConfig
    from jdsr_cli.training.method_api import Batch, Losses
    from jdsr_cli.training.step_context import StepContext

DISCRIMINATOR = "discriminator"


def relativistic_loss(real: torch.Tensor, fake: torch.Tensor, *, for_generator: bool) -> torch.Tensor:
    """RaGAN: each side judged against the other's mean; the generator wants its fakes to look more real than
    the reals, the discriminator the opposite."""
    real_vs_fake, fake_vs_real = real - fake.mean(), fake - real.mean()
    real_label, fake_label = (0.0, 1.0) if for_generator else (1.0, 0.0)
    return 0.5 * (binary_cross_entropy_with_logits(real_vs_fake, torch.full_like(real_vs_fake, real_label))
                  + binary_cross_entropy_with_logits(fake_vs_real, torch.full_like(fake_vs_real, fake_label)))


class Adversarial(Supervised):
    """``--method adversarial``: see the module docstring."""

    name = "adversarial"
    OPTIONS: Mapping[str, Any] = {"gan_weight": 0.1, "disc_lr": 1e-4, "disc_width": 32, "disc_norm": "spectral",
                                  "disc_arch": "patch", "warmup": 0, "texture_weight": 0.0}

    def __init__(self, config: TrainConfig) -> None:
        super().__init__(config)
        # it judges the network's output, so it takes the network's output channels
        self.discriminator = build_judge(str(self.options["disc_arch"]), int(self.options["disc_width"]),
                                         int(self.net.out_channels), str(self.options["disc_norm"]))
        self.add_optimizer(DISCRIMINATOR, *adam_with_schedule(self.discriminator.parameters(), config,
                                                               float(self.options["disc_lr"])))

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> None:
        values = {**cls.OPTIONS, **options}
        check_table_types("adversarial", cls.OPTIONS, values)
        for key in ("gan_weight", "disc_lr", "warmup", "texture_weight"):
            if values[key] < 0:
                raise UsageError(f"[adversarial] {key} = {values[key]}: must be 0 or more")
        if not 4 <= values["disc_width"] <= 256:
            raise UsageError(f"[adversarial] disc_width = {values['disc_width']}: choose 4..256")
        for key, choices in (("disc_norm", NORMS), ("disc_arch", ARCHS)):
            if values[key] not in choices:
                raise UsageError(f"[adversarial] {key} = {values[key]!r}: choose {' or '.join(choices)}")
        if values["disc_arch"] == "unet" and values["disc_norm"] != "spectral":
            raise UsageError(f"[adversarial] disc_norm = {values['disc_norm']!r}: the unet judge is spectral-norm only")

    def describe(self) -> str:
        return f"{super().describe()} + adversarial (weight {self.options['gan_weight']})"

    def trainable(self) -> dict[str, nn.Module]:
        return {"net": self.net, DISCRIMINATOR: self.discriminator}

    def train_step(self, batch: Batch, step: int, ctx: StepContext) -> Losses:
        output = ctx.forward(self.net, batch.lr)
        loss, losses = self.pixel_losses(output, batch.hr)
        if float(self.options["gan_weight"]) == 0:
            ctx.backward_and_step(loss, MAIN)
            return {"loss": loss.detach(), **losses}
        with ctx.autocast():  # the raw discriminator: its gradients are taken by hand below
            real = self.discriminator(batch.hr).float()
        if step >= int(self.options["warmup"]):  # before: the judge learns first (module docstring)
            with ctx.autocast():
                fake = self.discriminator(output).float()
            adversarial = relativistic_loss(real.detach(), fake, for_generator=True)
            loss = loss + float(self.options["gan_weight"]) * adversarial
            losses["adv"] = adversarial.detach()
        ctx.backward_and_step(loss, MAIN)  # into the network's parameters only
        losses["disc"] = self.step_discriminator(real, output.detach(), ctx)
        return {"loss": loss.detach(), **losses}

    def pixel_losses(self, output: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, Losses]:
        """L1, plus the texture term when ``texture_weight`` > 0 (texture.py); the sum and each term."""
        l1 = l1_loss(output.float(), target)
        weight = float(self.options["texture_weight"])
        if weight == 0:
            return l1, {"l1": l1.detach()}
        texture = texture_loss(output, target, self.config.scale)
        return l1 + weight * texture, {"l1": l1.detach(), "texture": texture.detach()}

    def step_discriminator(self, real: torch.Tensor, output: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        """One Adam step of the discriminator on (target, network output); returns its loss."""
        with ctx.autocast():
            fake = self.discriminator(output).float()
        disc_loss = relativistic_loss(real, fake, for_generator=False)
        params = [p for p in self.discriminator.parameters() if p.requires_grad]
        ctx.step_with_gradients(DISCRIMINATOR, list(torch.autograd.grad(disc_loss, params)), disc_loss)
        return disc_loss.detach()
