"""The label generator's meta step (docs/design/jdsr-method.md §5.3, MetaDistiller-style, [I]).

One look-ahead of the target, θ' = θ + Δ(∇θ L_inner(θ, φ)), where L_inner is the target's loss with the soft
labels y = G_φ(features) not detached from φ and Δ is the step the target's own optimizer would take with
that gradient (``AdamLookAhead``: Adam's per-weight scaling from its state, issue 30); then φ is stepped by
the gradient of the meta loss L1(S_θ'(LR'), HR') on a held-out meta batch. ``second`` differentiates through
the look-ahead (``torch.func.functional_call``, create_graph); ``finite-difference`` is the DARTS
approximation −(∇φ L_inner(θ + εw) − ∇φ L_inner(θ − εw)) / 2ε with w = P ⊙ ∇θ' L_meta, P = dΔ/dg the
look-ahead's (diagonal, constant) gain, which needs first derivatives only.

Why not plain SGD with α = lr (the reconstruction's first form, kept as ``SgdLookAhead``): the target trains
with Adam, whose step is about lr per weight, while α·g with α = lr moved each weight by ~1e-9, so the meta
gradient was noise-sized (a median of 7.6e-9, half of it under Adam's ε).

The features the generator reads are detached, as in the real step (where the labels are constants for θ),
so the look-ahead simulates the step the target will take. Every call here bypasses DDP; instead the
look-ahead gradient (and v) are averaged over the ranks by hand, so every rank steps to the same θ' that one
process with the whole batch would, and ``ctx.step_with_gradients`` averages the generator's gradients.
Parameters that do not require gradients (SPAN's derived ``eval_conv``) are not part of θ.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.func import functional_call

from jdsr_cli.training.methods.jdsr.networks import SectionedTarget, as_trace
from jdsr_cli.training.methods.jdsr.options import at_least_fp32

if TYPE_CHECKING:
    from jdsr_cli.archs.base import SectionTrace
    from jdsr_cli.archs.sections import LabelGenerator
    from jdsr_cli.training.method_api import Batch
    from jdsr_cli.training.step_context import StepContext

InnerLoss = Callable[[list[torch.Tensor], list[torch.Tensor], torch.Tensor], torch.Tensor]
GENERATOR = "generator"  # the generator's optimizer


class SgdLookAhead:
    """Δ = −α g: a plain SGD step (the look-ahead before issue 30; tests use it as a reference)."""

    def __init__(self, alpha: float) -> None:
        self.alpha = float(alpha)

    def move(self, params: Sequence[torch.Tensor], grads: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        return [-self.alpha * g for g in grads]

    def gain(self, params: Sequence[torch.Tensor], grads: Sequence[torch.Tensor]) -> list[torch.Tensor | float]:
        return [self.alpha for _ in grads]


class AdamLookAhead:
    """Δ = the step ``optimizer`` (torch Adam, no amsgrad) would take from its current state with gradients g:
    −lr/(1−β1^t) · m'/(√(v'/(1−β2^t)) + ε), m' = β1 m + (1−β1) g, v' = β2 v + (1−β2) g², t = its step + 1.

    Differentiable in g through m' (linear); the denominator is a constant of the step (computed from g but
    detached), so the gain dΔ/dg = −lr (1−β1)/(1−β1^t)/(√v̂' + ε) is diagonal and does not vanish at the
    first step (where a fully differentiated Adam step is lr·sign(g), flat in g). ``lr``: the look-ahead's
    learning rate (default the optimizer's current one)."""

    def __init__(self, optimizer: torch.optim.Optimizer, lr: float | None = None) -> None:
        self.optimizer = optimizer
        self.lr = lr
        self.groups = {id(p): group for group in optimizer.param_groups for p in group["params"]}

    def _terms(self, param: torch.Tensor, grad: torch.Tensor) -> tuple[float, torch.Tensor | None, torch.Tensor]:
        """(−lr/(1−β1^t), β1·m or None, the detached denominator) of one parameter."""
        group = self.groups[id(param)]
        if group.get("amsgrad") or group.get("maximize"):
            raise ValueError("the look-ahead simulates Adam without amsgrad or maximize")
        beta1, beta2 = group["betas"]
        state = self.optimizer.state.get(param, {})
        t = float(state["step"]) + 1 if "step" in state else 1.0
        lr = group["lr"] if self.lr is None else self.lr
        g = grad.detach()
        if group["weight_decay"]:
            g = g + group["weight_decay"] * param.detach()
        v = (1 - beta2) * g.square()
        if "exp_avg_sq" in state:
            v = v + beta2 * state["exp_avg_sq"]
        denom = (v.sqrt() / math.sqrt(1 - beta2**t)) + group["eps"]
        m_prev = beta1 * state["exp_avg"] if "exp_avg" in state else None
        return -lr / (1 - beta1**t), m_prev, denom

    def move(self, params: Sequence[torch.Tensor], grads: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        moves = []
        for param, grad in zip(params, grads, strict=True):
            factor, m_prev, denom = self._terms(param, grad)
            beta1 = self.groups[id(param)]["betas"][0]
            if self.groups[id(param)]["weight_decay"]:
                grad = grad + self.groups[id(param)]["weight_decay"] * param.detach()
            m = (1 - beta1) * grad if m_prev is None else m_prev + (1 - beta1) * grad
            moves.append(factor * m / denom)
        return moves

    def gain(self, params: Sequence[torch.Tensor], grads: Sequence[torch.Tensor]) -> list[torch.Tensor | float]:
        gains: list[torch.Tensor | float] = []
        for param, grad in zip(params, grads, strict=True):
            factor, _, denom = self._terms(param, grad)
            gains.append(-factor * (1 - self.groups[id(param)]["betas"][0]) / denom)
        return gains


LookAhead = SgdLookAhead | AdamLookAhead


def meta_step(target: SectionedTarget, generator: LabelGenerator, batch: Batch, meta_batch: Batch,
              inner_loss: InnerLoss, label_loss: InnerLoss, look_ahead: LookAhead | float, order: str,
              ctx: StepContext) -> torch.Tensor:
    """Step the generator's optimizer once; returns the meta loss (detached). ``look_ahead``: the target's
    simulated step (a number α means ``SgdLookAhead(α)``)."""
    if not isinstance(look_ahead, (SgdLookAhead, AdamLookAhead)):
        look_ahead = SgdLookAhead(look_ahead)
    trained = [(name, param) for name, param in target.net.named_parameters() if param.requires_grad]
    names = [name for name, _ in trained]
    theta = [param for _, param in trained]
    phi = list(generator.parameters())
    with ctx.autocast():
        outputs = target(*ctx.formatted(batch.lr))
        features = as_trace(outputs, detach=True)  # constants for θ, also in the finite difference
        labels = generator(features)
    loss_in = inner_loss(outputs[0], labels, batch.hr)
    second = order == "second"
    grads = ctx.mean_gradients(_grad(loss_in, theta, create_graph=second), differentiable=second)
    moves = look_ahead.move(theta, grads)
    fast = [t + d for t, d in zip(theta, moves, strict=True)] if second else \
        [(t + d).detach().requires_grad_() for t, d in zip(theta, moves, strict=True)]
    with ctx.autocast():
        sr = functional_call(target.net, dict(zip(names, fast, strict=True)), ctx.formatted(meta_batch.lr))
    loss_meta = nn.functional.l1_loss(at_least_fp32(sr), meta_batch.hr)
    if second:
        phi_grads = _grad(loss_meta, phi)
    else:
        v = ctx.mean_gradients(_grad(loss_meta, fast))
        w = [gain * g for gain, g in zip(look_ahead.gain(theta, grads), v, strict=True)]
        phi_grads = _finite_difference(target, generator, features, batch, names, theta, w, label_loss, ctx)
    ctx.step_with_gradients(GENERATOR, phi_grads, loss_meta)
    return loss_meta.detach()


def _finite_difference(target: SectionedTarget, generator: LabelGenerator, features: SectionTrace, batch: Batch,
                       names: list[str], theta: list[torch.Tensor], v: Sequence[torch.Tensor],
                       label_loss: InnerLoss, ctx: StepContext) -> list[torch.Tensor]:
    """−(∇φ L(θ + εv) − ∇φ L(θ − εv)) / 2ε, ε = 0.01 / ‖v‖ (DARTS), v = the look-ahead's gain times ∇θ' L_meta;
    only the label term depends on φ, and the labels are made from the features at θ, as in the look-ahead."""
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
    return [-(p - m) / (2 * eps) for p, m in zip(plus, minus, strict=True)]


def _grad(loss: torch.Tensor, inputs: Sequence[torch.Tensor], create_graph: bool = False) -> list[torch.Tensor]:
    """d loss / d inputs, zeros for an input the loss does not reach."""
    grads = torch.autograd.grad(loss, list(inputs), create_graph=create_graph, allow_unused=True)
    return [torch.zeros_like(t) if g is None else g for t, g in zip(inputs, grads, strict=True)]
