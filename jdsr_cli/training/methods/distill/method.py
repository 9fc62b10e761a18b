"""The ``distill`` training method: one student, one or more frozen teachers, one loss of ``options.LOSSES``.

Per step: every teacher runs on the batch's LR under ``no_grad`` with its taps captured; the student runs
(through DDP when there is one) with its taps and the feature term; the loss is
``w_hr·L1(S, HR) + w_kd·L1(S, mean_n T_n) + w_feat·term``. Teachers are frozen (eval mode, no gradients,
outside EMA, state, DDP and every optimizer); the student's adapters are trained with it and dropped at
export, so ``best/`` and ``last/`` are plain checkpoints of ``--student-arch``, recording their teachers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from jdsr_cli.archs.taps import capture_features
from jdsr_cli.checkpoints.lineage import init_record
from jdsr_cli.checkpoints.resolve import resolve_model
from jdsr_cli.errors import UsageError
from jdsr_cli.training.method_api import Batch, InitReport, Losses, Validation
from jdsr_cli.training.methods.base import MAIN, MethodBase, adam_with_schedule
from jdsr_cli.training.methods.distill import terms
from jdsr_cli.training.methods.distill.options import FIXED_ON_RESUME, ONLINE, OPTIONS, DistillOptions, check_options
from jdsr_cli.training.methods.distill.teachers import (
    build_term,
    load_teacher,
    output_kd,
    select_taps,
    teachers_forward,
)
from jdsr_cli.training.methods.nets import arch_config, build_net, copy_matching, initialise_net
from jdsr_cli.training.methods.scoring import score_upscaler

if TYPE_CHECKING:
    from jdsr_cli.archs.base import SRNet
    from jdsr_cli.archs.registry import ArchConfig
    from jdsr_cli.checkpoints.load import LoadedModel
    from jdsr_cli.training.config import TrainConfig
    from jdsr_cli.training.step_context import StepContext

class DistillStudent(nn.Module):
    """The student network and the feature term's adapters, as one module (one DDP wrapper for both).

    ``forward(lr, teacher_features)`` returns the SR and the feature term (None without one)."""

    def __init__(self, net: SRNet, taps: list[str], term: terms.FeatureTerm | None) -> None:
        super().__init__()
        self.net = net
        self.taps = taps
        self.term = term

    def forward(self, lr: torch.Tensor, teacher_features: Sequence[Sequence[torch.Tensor]] | None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.term is None:
            return self.net(lr), None
        with capture_features(self.net, self.taps) as captured:
            sr = self.net(lr)
        return sr, self.term([captured[t] for t in self.taps], teacher_features or [])


def load_privileged_teacher(specs: list[str], scale: int) -> tuple[LoadedModel, LoadedModel]:
    """PISR's teacher: a superior-LR pair (HR encoder + decoder), e.g. ``jdsr train --method superior-lr --arch
    <the student's arch>`` (PISR's step 1) or a bundled pair; a run folder, its encoder/decoder or a pair name."""
    if len(specs) != 1:
        raise UsageError("--kd-loss pisr takes one --teacher: a superior-LR pair (e.g. a run of jdsr train --method "
                         "superior-lr, or slr-up-x4)")
    spec = specs[0]
    folder = Path(spec).expanduser()
    if (folder / "encoder").is_dir() and (folder / "decoder").is_dir():
        halves = [resolve_model(str(folder / part), scale=scale, option="--teacher") for part in ("encoder", "decoder")]
    else:
        first = resolve_model(spec, scale=scale, option="--teacher")
        pair = first.entry.pair if first.entry is not None else None
        if pair is None:
            raise UsageError(f"--teacher {spec}: PISR needs a superior-LR pair (an HR encoder and its decoder), "
                             f"e.g. a run of jdsr train --method superior-lr --arch <student arch>, or slr-up-x{scale}")
        halves = [first, resolve_model(pair, scale=scale, option="--teacher")]
    encoder, decoder = sorted(halves, key=lambda loaded: loaded.config.arch != "slr-encoder")
    if encoder.config.arch != "slr-encoder" or decoder.config.scale != scale or encoder.config.scale != scale:
        raise UsageError(f"--teacher {spec}: not a superior-LR pair ×{scale}")
    return encoder, decoder


class Distill(MethodBase):
    """``jdsr distill``: see the module docstring. The online losses are its subclasses (``MutualDistill``,
    ``AdversarialDistill``); ``methods.distill.build`` picks the class a run's ``kd_loss`` needs."""

    name: ClassVar[str] = "distill"
    OPTIONS: ClassVar[Mapping[str, Any]] = OPTIONS
    FIXED_ON_RESUME: ClassVar[tuple[str, ...]] = FIXED_ON_RESUME

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> None:
        check_options(options)

    def __init__(self, config: TrainConfig) -> None:
        super().__init__(config)
        self.opts: DistillOptions = check_options(config.method_options)
        if not self.opts.teachers:
            raise UsageError("jdsr distill needs a teacher: --teacher MODEL (a bundled name, a checkpoint or hf://)")
        self.scale = config.scale
        self.arch_config = arch_config(config)
        self.net = build_net(self.arch_config)
        self.encoder: nn.Module | None = None  # PISR: the privileged teacher's HR encoder
        if self.opts.kd_loss == "pisr":
            encoder, decoder = load_privileged_teacher(self.opts.teachers, self.scale)
            self.encoder, self.loaded_teachers = encoder.model, [decoder]
        else:
            self.loaded_teachers = [load_teacher(spec, self.scale) for spec in self.opts.teachers]
        self.teachers = [loaded.model for loaded in self.loaded_teachers]
        self.student_taps, self.teacher_taps = select_taps(self.net, self.loaded_teachers, self.opts)
        term = build_term(self.net, self.student_taps, self.loaded_teachers, self.teacher_taps, self.opts)
        self.student = DistillStudent(self.net, self.student_taps, term)
        if self.opts.init_from_teacher:
            copied = copy_matching(self.teachers[0].state_dict(), self.net)
            if not copied:
                raise UsageError(f"--init-from-teacher: {self.loaded_teachers[0].name} shares no tensor with the "
                                 f"{self.arch_config.arch} student")
        self.add_optimizer(MAIN, *adam_with_schedule(self.student.parameters(), config))

    @property
    def validation_target(self) -> str:
        """"teacher" when the HR has no weight (``--w-hr 0``): then the teacher's output is the target."""
        frozen = self.encoder is None and self.opts.kd_loss not in ONLINE
        return "teacher" if frozen and self.opts.w_hr == 0 else "HR"

    # ---- the contract ------------------------------------------------------------------------------
    def describe(self) -> str:
        names = ", ".join(loaded.name for loaded in self.loaded_teachers)
        return f"{self.arch_config.arch} ×{self.scale} from {names} ({self.opts.kd_loss})"

    def trainable(self) -> dict[str, nn.Module]:
        return {"student": self.student}

    def frozen(self) -> dict[str, nn.Module]:
        encoder = {"encoder": self.encoder} if self.encoder is not None else {}
        return {**encoder, **{f"teacher{i}": model for i, model in enumerate(self.teachers)}}

    def deployed(self) -> nn.Module:
        return self.net

    def recipe_extra(self) -> dict[str, Any]:
        """The teachers' identities and recipes, recorded in every checkpoint (``training.teachers``)."""
        return {"teachers": [init_record(loaded) for loaded in self.loaded_teachers]}

    def initialise_from(self, spec: str) -> InitReport:
        return initialise_net(self.net, spec)

    def exports(self, deployed: nn.Module) -> dict[str, tuple[nn.Module, ArchConfig]]:
        return {"": (deployed, self.arch_config)}

    def validate(self, net: nn.Module, pairs: list[Any], device: torch.device) -> Validation:
        """PSNR to the HR; without the HR term (``--w-hr 0``), PSNR to the (first) teacher's output, the target."""
        if self.validation_target == "teacher":
            return score_upscaler(net, pairs, device, self.scale, teacher=self.teachers[0])
        return score_upscaler(net, pairs, device, self.scale)

    # ---- the step ----------------------------------------------------------------------------------
    def train_step(self, batch: Batch, step: int, ctx: StepContext) -> Losses:
        o = self.opts
        with torch.no_grad():  # PISR's teacher sees the privileged input: the superior LR of the HR patch
            teacher_input = batch.lr if self.encoder is None else ctx.forward(self.encoder, batch.hr)
        outputs, features = teachers_forward(self.teachers, self.teacher_taps, teacher_input, ctx)
        sr, feature_loss = ctx.forward(self.student, batch.lr, features if self.student.term is not None else None)
        sr = sr.float()
        losses: dict[str, torch.Tensor] = {"l1": nn.functional.l1_loss(sr, batch.hr)}
        total = o.w_hr * losses["l1"]
        if o.w_kd > 0 and self.encoder is None:  # PISR's output answers the HR, not the student's input
            losses["kd"] = output_kd(sr, outputs)
            total = total + o.w_kd * losses["kd"]
        if feature_loss is not None:
            losses["feat"] = feature_loss
            total = total + self.opts.feature_weight * feature_loss
        ctx.backward_and_step(total, MAIN)
        return {"loss": total, **{k: v.detach() for k, v in losses.items()}}
