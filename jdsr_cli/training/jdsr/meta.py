"""The label generator's meta step (jdsr-method.md §5.3, MetaDistiller-style, [I]).

One look-ahead of the target, θ' = θ − α ∇θ L_inner(θ, φ), where L_inner is the target's loss with the soft
labels y = G_φ(features) not detached from φ; then φ is stepped by the gradient of the meta loss
L1(S_θ'(LR'), HR') on a held-out meta batch. ``second`` differentiates through the look-ahead
(``torch.func.functional_call``, create_graph); ``finite-difference`` is the DARTS approximation
−α (∇φ L_inner(θ + εv) − ∇φ L_inner(θ − εv)) / 2ε with v = ∇θ' L_meta, which needs first derivatives only.

The features the generator reads are detached, as in the real step (where the labels are constants for θ),
so the look-ahead simulates the step the target will take. Every call here bypasses DDP; instead the
look-ahead gradient (and v) are averaged over the ranks by hand, so every rank steps to the same θ' that one
process with the whole batch would, and ``ctx.step_with_gradients`` averages the generator's gradients.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.func import functional_call

from jdsr_cli.training.jdsr.networks import SectionedTarget, as_trace
from jdsr_cli.training.jdsr.options import at_least_fp32

if TYPE_CHECKING:
    from jdsr_cli.archs.base import SectionTrace
    from jdsr_cli.archs.sections import LabelGenerator
    from jdsr_cli.training.method_api import Batch
    from jdsr_cli.training.step_context import StepContext

InnerLoss = Callable[[list[torch.Tensor], list[torch.Tensor], torch.Tensor], torch.Tensor]
GENERATOR = "generator"  # the generator's optimizer


def meta_step(target: SectionedTarget, generator: LabelGenerator, batch: Batch, meta_batch: Batch,
              inner_loss: InnerLoss, label_loss: InnerLoss, alpha: float, order: str,
              ctx: StepContext) -> torch.Tensor:
    """Step the generator's optimizer once; returns the meta loss (detached)."""
    names = [name for name, _ in target.net.named_parameters()]
    theta = [param for _, param in target.net.named_parameters()]
    phi = list(generator.parameters())
    with ctx.autocast():
        outputs = target(*ctx.formatted(batch.lr))
        features = as_trace(outputs, detach=True)  # constants for θ, also in the finite difference
        labels = generator(features)
    loss_in = inner_loss(outputs[0], labels, batch.hr)
    second = order == "second"
    grads = ctx.mean_gradients(_grad(loss_in, theta, create_graph=second), differentiable=second)
    fast = [t - alpha * g for t, g in zip(theta, grads, strict=True)] if second else \
        [(t - alpha * g).detach().requires_grad_() for t, g in zip(theta, grads, strict=True)]
    with ctx.autocast():
        sr = functional_call(target.net, dict(zip(names, fast, strict=True)), ctx.formatted(meta_batch.lr))
    loss_meta = nn.functional.l1_loss(at_least_fp32(sr), meta_batch.hr)
    if second:
        phi_grads = _grad(loss_meta, phi)
    else:
        v = ctx.mean_gradients(_grad(loss_meta, fast))
        phi_grads = _finite_difference(target, generator, features, batch, names, theta, v, alpha, label_loss, ctx)
    ctx.step_with_gradients(GENERATOR, phi_grads, loss_meta)
    return loss_meta.detach()


def _finite_difference(target: SectionedTarget, generator: LabelGenerator, features: SectionTrace, batch: Batch,
                       names: list[str], theta: list[torch.Tensor], v: Sequence[torch.Tensor], alpha: float,
                       label_loss: InnerLoss, ctx: StepContext) -> list[torch.Tensor]:
    """−α (∇φ L(θ + εv) − ∇φ L(θ − εv)) / 2ε, ε = 0.01 / ‖v‖ (DARTS); only the label term depends on φ, and
    the labels are made from the features at θ, as in the look-ahead."""
    norm = torch.sqrt(sum((g.float() ** 2).sum() for g in v))  # type: ignore[arg-type]
    eps = 0.01 / (float(norm) + 1e-12)
    phi = list(generator.parameters())

    def grad_phi(sign: float) -> list[torch.Tensor]:
        shifted = {f"net.{n}": (t + sign * eps * g).detach() for n, t, g in zip(names, theta, v, strict=True)}
        with ctx.autocast():
            outputs = functional_call(target, shifted, ctx.formatted(batch.lr))
            labels = generator(features)
        return _grad(label_loss(outputs[0], labels, batch.hr), phi)

    plus, minus = grad_phi(1.0), grad_phi(-1.0)
    return [-alpha * (p - m) / (2 * eps) for p, m in zip(plus, minus, strict=True)]


def _grad(loss: torch.Tensor, inputs: Sequence[torch.Tensor], create_graph: bool = False) -> list[torch.Tensor]:
    """d loss / d inputs, zeros for an input the loss does not reach."""
    grads = torch.autograd.grad(loss, list(inputs), create_graph=create_graph, allow_unused=True)
    return [torch.zeros_like(t) if g is None else g for t, g in zip(inputs, grads, strict=True)]
