"""``jdsr train --method jdsr``: the target trained by self-distillation and mutual learning with a peer.

Per step (docs/design/jdsr-method.md §12): the generator's meta step on a held-out batch (``meta``); the target's
sectioned forward, its soft labels from the generator (detached); the peer's forward on the 8-bit superior
LR of the frozen stage-1 encoder; the target's loss
``hr·L1(out_K, HR) + isr·Σ L1(out_k, HR) + label·Σ d(out_k, y_k) + ml·w(T)·L1(out, sg(peer))`` (d:
``label_loss``) and its step;
the peer's loss ``L1(peer, HR) + ml·w(T)·L1(peer, sg(out_K))`` and its step unless the gap gate holds it.
With ``[jdsr] teachers`` the target also learns from frozen teachers by one offline loss of ``jdsr distill``
(``kd_weight·L1(out_K, mean teacher output) + kd_feat_weight·term``; the look-ahead of the meta step leaves it
out, as it leaves out the mutual term) [I]: JDSR + an offline method, to check whether their gains add up.
The checkpoints hold the plain target (``exports``); heads, generator and peer live only in the resume state.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from jdsr_cli.archs.taps import capture_features
from jdsr_cli.checkpoints.lineage import init_record
from jdsr_cli.training.dataset import PatchDataset
from jdsr_cli.training.method_api import Batch, InitReport, Losses, Validation
from jdsr_cli.training.methods.base import MethodBase, adam_with_schedule
from jdsr_cli.training.methods.distill.teachers import (
    build_term,
    load_teacher,
    output_kd,
    select_taps,
    teachers_forward,
)
from jdsr_cli.training.methods.jdsr.gap import GapCrops, measure_gap
from jdsr_cli.training.methods.jdsr.meta import GENERATOR, AdamLookAhead, SgdLookAhead, meta_step
from jdsr_cli.training.methods.jdsr.networks import (
    SectionedTarget,
    as_trace,
    build_peer,
    label_generator,
    load_encoder,
)
from jdsr_cli.training.methods.jdsr.options import (
    FIXED_ON_RESUME,
    OPTIONS,
    JdsrOptions,
    check_options,
    curriculum_weight,
    label_distance,
)
from jdsr_cli.training.methods.nets import arch_config, build_net, copy_matching, initialise_net, load_init
from jdsr_cli.training.methods.scoring import score_upscaler, to_batch

if TYPE_CHECKING:
    from jdsr_cli.archs.registry import ArchConfig
    from jdsr_cli.training.config import TrainConfig
    from jdsr_cli.training.data import ImagePair
    from jdsr_cli.training.step_context import StepContext

TARGET, PEER = "target", "peer"  # optimizer names (with GENERATOR)
KD_TERM = "kd_term"  # the offline term's adapters (trained by the target's optimizer)


def _l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return nn.functional.l1_loss(a.float(), b.float())


class JDSR(MethodBase):
    """Joint distillation of one registry upscaler (IMDN, PAN, EDSR, ...): see the module docstring."""

    name: ClassVar[str] = "jdsr"
    OPTIONS: ClassVar[Mapping[str, Any]] = OPTIONS
    FIXED_ON_RESUME: ClassVar[tuple[str, ...]] = FIXED_ON_RESUME

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> None:
        check_options(options)

    def __init__(self, config: TrainConfig) -> None:
        super().__init__(config)
        self.opts: JdsrOptions = check_options(config.method_options)
        self.scale = config.scale
        self.arch_config = arch_config(config)
        self.net = build_net(self.arch_config)
        opts = self.opts
        self.target: nn.Module = SectionedTarget(self.net, opts.sections) if opts.self_distill else self.net
        self.generator = label_generator(self.net, opts.sections) if opts.self_distill else None
        self.peer: nn.Module | None = None
        self.encoder: nn.Module | None = None
        if opts.mutual:
            self.peer, self.peer_config = build_peer(opts.peer_arch, opts.peer_preset, self.scale)
            self.encoder = load_encoder(opts.encoder, self.scale).model
            if opts.peer_init:
                copy_matching(load_init(opts.peer_init).model.state_dict(), self.peer)
        self._init_teachers()
        adapters = list(self.kd_term.parameters()) if self.kd_term is not None else []
        self._add_optimizer(TARGET, [*self.target.parameters(), *adapters], config.lr)
        if self.generator is not None:
            self._add_optimizer(GENERATOR, self.generator.parameters(), opts.meta_lr)
        if self.peer is not None:
            self._add_optimizer(PEER, self.peer.parameters(), opts.peer_lr or config.lr)
        self.held_out: list[ImagePair] = []
        self._meta_data: Any = None
        self._crops: GapCrops | None = None
        self.gap: dict[str, float] = {}  # the last measurement: gap, peer_psnr, target_psnr, peer_paused

    def _init_teachers(self) -> None:
        """The offline part (``[jdsr] teachers``): frozen teachers, taps and the feature term (its adapters train
        with the target)."""
        self.kd = self.opts.distill_options()
        self.loaded_teachers = [load_teacher(spec, self.scale) for spec in self.kd.teachers] if self.kd else []
        self.teachers = [loaded.model for loaded in self.loaded_teachers]
        self.kd_term: nn.Module | None = None
        self.student_taps: list[str] = []
        self.teacher_taps: list[list[str]] = []
        if self.kd is not None:
            self.student_taps, self.teacher_taps = select_taps(self.net, self.loaded_teachers, self.kd)
            self.kd_term = build_term(self.net, self.student_taps, self.loaded_teachers, self.teacher_taps, self.kd)

    def _add_optimizer(self, name: str, parameters: Any, lr: float) -> None:
        self.add_optimizer(name, *adam_with_schedule(parameters, self.config, lr))

    # ---- the contract ------------------------------------------------------------------------------
    def describe(self) -> str:
        parts = [p for p, on in (("self-distillation", self.opts.self_distill), ("meta", self.opts.uses_meta),
                                 ("mutual", self.opts.mutual)) if on]
        teachers = f" + {self.kd.kd_loss} from {', '.join(t.name for t in self.loaded_teachers)}" if self.kd else ""
        return f"{self.arch_config.arch} ×{self.scale} (JDSR: {' + '.join(parts) or 'plain L1'}{teachers})"

    def trainable(self) -> dict[str, nn.Module]:
        adapters = self.kd_term if self.kd_term is not None and any(True for _ in self.kd_term.parameters()) else None
        nets = {TARGET: self.target, GENERATOR: self.generator, PEER: self.peer, KD_TERM: adapters}
        return {name: net for name, net in nets.items() if net is not None}

    def frozen(self) -> dict[str, nn.Module]:
        encoder = {"encoder": self.encoder} if self.encoder is not None else {}
        return {**encoder, **{f"teacher{i}": model for i, model in enumerate(self.teachers)}}

    def recipe_extra(self) -> dict[str, Any]:
        """The teachers' identities and recipes (``training.teachers``), as jdsr distill records them."""
        return {"teachers": [init_record(loaded) for loaded in self.loaded_teachers]} if self.teachers else {}

    def deployed(self) -> nn.Module:
        return self.net

    def training_pairs(self, pairs: list[ImagePair]) -> list[ImagePair]:
        """Every k-th image (k = 1/meta_fraction, at least one) is held out for meta batches and the gap;
        a single image is shared. Every variant holds the same images out, also one that uses none of them
        (no meta, no gate, or self_distill and mutual both off: plain L1), so an ablation's or a fair test's
        rows all train on one list (issue 30)."""
        step = max(2, round(1 / self.opts.meta_fraction))
        self.held_out = pairs[step // 2::step] or pairs[-1:]
        kept = [p for p in pairs if not any(p is h for h in self.held_out)]
        return kept or pairs

    def extra_state(self) -> dict[str, Any]:
        return {"gap": dict(self.gap)}

    def load_extra_state(self, state: Mapping[str, Any]) -> None:
        self.gap = dict(state.get("gap", {}))

    def initialise_from(self, spec: str) -> InitReport:
        return initialise_net(self.net, spec)

    def exports(self, deployed: nn.Module) -> dict[str, tuple[nn.Module, ArchConfig]]:
        return {"": (deployed, self.arch_config)}

    def validate(self, net: nn.Module, pairs: list[Any], device: torch.device) -> Validation:
        scores = score_upscaler(net, pairs, device, self.scale)
        if self.peer is not None and self.encoder is not None:
            encoder = self.encoder
            peer = score_upscaler(self.peer, pairs, device, self.scale,
                                  feed=lambda pair: encoder(to_batch(pair.hr, device)))
            scores.extra = {"val_peer_psnr": peer.psnr, "val_gap": peer.psnr - scores.psnr}
        return scores

    # ---- the step ----------------------------------------------------------------------------------
    def train_step(self, batch: Batch, step: int, ctx: StepContext) -> Losses:
        opts = self.opts
        losses: dict[str, torch.Tensor | float] = {}
        if opts.gate is not None and (not self.gap or step % (opts.gap_every or self.config.val_every) == 0):
            self._measure_gap(ctx)
        if opts.uses_meta and step % opts.meta_every == 0:
            losses["meta"] = meta_step(self.target, self.generator, batch, self._meta_batch(step, ctx),  # type: ignore[arg-type]
                                       self._inner_loss, self._label_loss, self._look_ahead(ctx), opts.meta_order, ctx)
        elif opts.uses_meta:  # the generator's schedule follows the run's steps, not its meta steps
            self.schedulers()[GENERATOR].step()
        teacher_outputs, teacher_features = teachers_forward(self.teachers, self.teacher_taps, batch.lr, ctx)
        taps = capture_features(self.net, self.student_taps) if self.kd_term is not None else contextlib.nullcontext({})
        with taps as captured:
            outputs, labels, generator_loss = self._target_forward(batch, ctx)
        weight = curriculum_weight(step, opts.curriculum_steps or self.config.steps, opts.curriculum_k) \
            if opts.curriculum else 1.0
        peer_sr, peer_learns = self._peer_forward(batch, ctx)
        target_losses = self._target_losses(outputs, labels, peer_sr, batch.hr, weight)
        if self.kd is not None:
            student_features = [captured[t] for t in self.student_taps] if self.kd_term is not None else []
            target_losses = self._add_teacher_losses(target_losses, outputs[-1], teacher_outputs,
                                                     student_features, teacher_features, ctx)
        ctx.backward_and_step(target_losses["loss"], TARGET)  # type: ignore[arg-type]
        losses = {**target_losses, **losses}
        if generator_loss is not None:
            ctx.backward_and_step(generator_loss, GENERATOR)
            losses["generator"] = generator_loss.detach()
        if peer_sr is not None:
            losses.update(self._peer_step(peer_sr, outputs[-1], batch.hr, weight, peer_learns, ctx))
            losses["ml_w"] = weight
        if opts.gate is not None:
            losses.update(self.gap)
        return losses

    def _look_ahead(self, ctx: StepContext) -> AdamLookAhead | SgdLookAhead:
        """The target's simulated step: its own Adam's (default) or plain SGD, at ``meta_inner_lr`` or the
        target's current learning rate."""
        if self.opts.meta_look_ahead == "sgd":
            return SgdLookAhead(self.opts.meta_inner_lr or ctx.learning_rate(TARGET))
        return AdamLookAhead(ctx.optimizers[TARGET], self.opts.meta_inner_lr or None)

    def _target_forward(self, batch: Batch, ctx: StepContext
                        ) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor | None]:
        """The target's outputs, the soft labels (detached) and, without meta, the generator's own L1 loss."""
        if self.generator is None:
            return [ctx.forward(self.target, batch.lr)], [], None
        parts = ctx.forward(self.target, batch.lr)
        trace = as_trace(parts, detach=True)
        if self.opts.uses_meta:
            with torch.no_grad(), ctx.autocast():
                return parts[0], self.generator(trace), None
        labels = ctx.forward(self.generator, trace)  # [I] no meta: the generator learns L1(y_k, HR) itself
        generator_loss = sum(_l1(y, batch.hr) for y in labels) / len(labels)
        return parts[0], [y.detach() for y in labels], generator_loss  # type: ignore[return-value]

    def _target_losses(self, outputs: list[torch.Tensor], labels: list[torch.Tensor],
                       peer_sr: torch.Tensor | None, hr: torch.Tensor, weight: float) -> dict[str, torch.Tensor]:
        opts = self.opts
        losses = {"l1": _l1(outputs[-1], hr)}
        total = opts.hr_weight * losses["l1"]
        if labels:
            losses["sections"] = sum(_l1(o, hr) for o in outputs[:-1])  # type: ignore[assignment]
            losses["labels"] = self._label_loss(outputs, labels, hr) / max(opts.label_weight, 1e-12)
            total = total + opts.isr_weight * losses["sections"] + opts.label_weight * losses["labels"]
        if peer_sr is not None:
            touched = outputs if opts.ml_outputs == "all" else outputs[-1:]
            losses["ml"] = sum(_l1(o, peer_sr.detach()) for o in touched)  # type: ignore[assignment]
            total = total + opts.ml_weight * weight * losses["ml"]
        return {"loss": total, **{k: v.detach() for k, v in losses.items()}}

    def _add_teacher_losses(self, losses: dict[str, torch.Tensor], sr: torch.Tensor,
                            teacher_outputs: list[torch.Tensor], student_features: list[torch.Tensor],
                            teacher_features: list[list[torch.Tensor]], ctx: StepContext) -> dict[str, torch.Tensor]:
        """The offline method's terms added to the target's loss: output KD and the feature term."""
        kd = self.kd
        assert kd is not None
        total = losses["loss"]
        extra: dict[str, torch.Tensor] = {}
        if kd.w_kd > 0:
            extra["kd"] = output_kd(sr, teacher_outputs)
            total = total + kd.w_kd * extra["kd"]
        if self.kd_term is not None:
            extra["feat"] = ctx.forward(self.kd_term, student_features, teacher_features)
            total = total + kd.feature_weight * extra["feat"]
        return {**losses, "loss": total, **{k: v.detach() for k, v in extra.items()}}

    def _inner_loss(self, outputs: list[torch.Tensor], labels: list[torch.Tensor], hr: torch.Tensor) -> torch.Tensor:
        """The target's loss the look-ahead steps on (without the mutual term, which does not involve φ)."""
        opts = self.opts
        sections = sum(_l1(o, hr) for o in outputs[:-1])
        return opts.hr_weight * _l1(outputs[-1], hr) + opts.isr_weight * sections \
            + self._label_loss(outputs, labels, hr)

    def _label_loss(self, outputs: list[torch.Tensor], labels: list[torch.Tensor], hr: torch.Tensor) -> torch.Tensor:
        kind = self.opts.label_loss
        return self.opts.label_weight * sum(label_distance(kind, o, y)  # type: ignore[return-value]
                                            for o, y in zip(outputs[:-1], labels, strict=True))

    def _peer_forward(self, batch: Batch, ctx: StepContext) -> tuple[torch.Tensor | None, bool]:
        """The peer's SR of the superior LR, and whether the peer updates this step (the gate may pause it)."""
        if self.peer is None:
            return None, False
        learns = not (self.gap.get("peer_paused") and self.opts.gap_action == "pause-peer")
        with torch.no_grad():
            slr = ctx.forward(self.encoder, batch.hr)  # type: ignore[arg-type]
        with torch.set_grad_enabled(learns):
            return ctx.forward(self.peer, slr), learns

    def _peer_step(self, peer_sr: torch.Tensor, target_sr: torch.Tensor, hr: torch.Tensor, weight: float,
                   learns: bool, ctx: StepContext) -> dict[str, torch.Tensor | float]:
        peer_l1 = _l1(peer_sr, hr)
        peer_ml = _l1(peer_sr, target_sr.detach())
        losses: dict[str, torch.Tensor | float] = {"peer_l1": peer_l1.detach(), "peer_ml": peer_ml.detach(),
                                                    "peer_learns": float(learns)}
        if learns:
            hold_ml = self.gap.get("peer_paused") and self.opts.gap_action == "stop-peer-ml"
            loss = peer_l1 + (0.0 if hold_ml else self.opts.ml_weight * weight) * peer_ml
            ctx.backward_and_step(loss, PEER)
        return losses

    # ---- held-out data -----------------------------------------------------------------------------
    def _meta_batch(self, step: int, ctx: StepContext) -> Batch:
        """The meta batch of ``step``: a pure function of (seed, step, rank), like the training batches."""
        if self._meta_data is None:
            self._meta_data = PatchDataset(self.held_out, self.scale, self.config.patch_size, self.config.seed + 1,
                                           self.config.degradation_settings())
        size, world, rank = self.config.batch_size, ctx.dist.world, ctx.dist.rank
        items = [self._meta_data[(step * size + i) * world + rank] for i in range(size)]
        lr, hr = (torch.stack(t).to(ctx.device) for t in zip(*items, strict=True))
        return Batch(lr, hr)

    def _measure_gap(self, ctx: StepContext) -> None:
        """Δ on the held-out crops; every rank takes the same decision (the mean of identical numbers)."""
        if self._crops is None:
            self._crops = GapCrops.from_pairs(self.held_out, self.opts.gap_images, self.scale, ctx.device)
        peer, target = measure_gap(self._crops, self.net, self.peer, self.encoder)  # type: ignore[arg-type]
        gap = float(ctx.mean_across_ranks(peer - target))
        self.gap = {"gap": gap, "peer_psnr": peer, "target_psnr": target,
                    "peer_paused": float(gap > self.opts.gate)}  # type: ignore[operator]
