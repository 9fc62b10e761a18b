"""Frozen teachers as any method uses them: loading, taps on both sides, the feature term, the no-grad forward.

``jdsr distill`` (one student, one loss) and ``jdsr train --method jdsr`` with ``[jdsr] teachers`` (JDSR plus an
offline method) share this, so a loss means the same thing in both.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn

from jdsr_cli.archs.taps import available_taps, capture_features, resolve_taps
from jdsr_cli.checkpoints.resolve import resolve_model
from jdsr_cli.errors import UsageError
from jdsr_cli.ops.resize import imresize
from jdsr_cli.training.methods.distill import terms
from jdsr_cli.training.methods.distill.options import ONLINE, DistillOptions, default_taps

if TYPE_CHECKING:
    from jdsr_cli.checkpoints.load import LoadedModel
    from jdsr_cli.training.step_context import StepContext

PROBE_SIDE = 16  # LR side of the forward that finds each tap's channels


class ResizedTeacher(nn.Module):
    """A teacher of a larger scale (×4 for a ×2 student) whose output is shrunk to the student's size with MATLAB
    bicubic (antialiased, float): what Real-ESRGAN users get with ``--outscale 2`` from its ×4 model. Its taps
    are the inner network's (they sit at the LR size, which both share)."""

    def __init__(self, net: nn.Module, factor: int) -> None:
        super().__init__()
        self.net = net
        self.factor = int(factor)
        self.in_channels: int = net.in_channels  # type: ignore[assignment]  # an SRNet's, like every teacher's

    def feature_taps(self) -> dict[str, nn.Module]:
        return self.net.feature_taps()  # type: ignore[operator]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        size = (out.shape[-2] // self.factor, out.shape[-1] // self.factor)
        return imresize(out.float(), size=size).to(out.dtype)


def load_teacher(spec: str, scale: int) -> LoadedModel:
    """A teacher ×``scale``, or of a whole multiple of it (its output shrunk to the student's size)."""
    loaded = resolve_model(spec, scale=scale, option="--teacher")
    teacher_scale = loaded.config.scale
    if loaded.config.arch == "slr-encoder" or teacher_scale < scale or teacher_scale % scale:
        raise UsageError(f"--teacher {spec}: {loaded.name} ({loaded.config.arch}) is ×{teacher_scale}, not an "
                         f"upscaler ×{scale} (or a whole multiple of it) like the student")
    if teacher_scale != scale:
        loaded.model = ResizedTeacher(loaded.model, teacher_scale // scale).eval()
    return loaded


def tap_channels(model: nn.Module, taps: list[str]) -> list[tuple[int, int, int]]:
    """(channels, height, width) of each tap for a PROBE_SIDE² input."""
    with torch.no_grad(), capture_features(model, taps) as captured:  # type: ignore[arg-type]
        model(torch.zeros(1, int(model.in_channels), PROBE_SIDE, PROBE_SIDE))  # an SRNet or a ResizedTeacher
    return [tuple(captured[t].shape[1:]) for t in taps]  # type: ignore[misc]


def select_taps(net: nn.Module, teachers: Sequence[LoadedModel], opts: DistillOptions
                ) -> tuple[list[str], list[list[str]]]:
    """The student's taps and each teacher's (``taps_student``/``taps_teacher`` or the loss's default), checked."""
    student = list(opts.taps_student) or default_taps(available_taps(net), opts.kd_loss)  # type: ignore[arg-type]
    try:
        resolve_taps(net, student)  # type: ignore[arg-type]
    except ValueError as error:  # unknown names: one line listing the available ones
        raise UsageError(f"--taps-student: {error}") from None
    chosen = []
    for loaded in teachers:
        taps = list(opts.taps_teacher) or default_taps(available_taps(loaded.model), opts.kd_loss)
        try:
            resolve_taps(loaded.model, taps)
        except ValueError as error:
            raise UsageError(f"--taps-teacher: {error}") from None
        if len(taps) != len(student):
            raise UsageError(f"--taps-teacher: {len(taps)} taps on {loaded.name}, {len(student)} on the student; "
                             "give as many of each")
        chosen.append(taps)
    return student, chosen


def build_term(net: nn.Module, student_taps: list[str], teachers: Sequence[LoadedModel],
               teacher_taps: Sequence[list[str]], opts: DistillOptions) -> terms.FeatureTerm | None:
    """The loss's feature term with adapters sized from the taps (None for output KD and the online losses)."""
    loss = opts.kd_loss
    if loss in ("output", *ONLINE):
        return None
    student = tap_channels(net, student_taps)
    shapes_t = [tap_channels(loaded.model, taps) for loaded, taps in zip(teachers, teacher_taps, strict=True)]
    for shapes, loaded in zip(shapes_t, teachers, strict=True):
        if [s[1:] for s in shapes] != [s[1:] for s in student]:
            raise UsageError(f"--teacher {loaded.name}: its taps are not at the student's resolution "
                             f"({shapes} vs {student}); pick taps in LR space")
    channels_s = [c for c, _, _ in student]
    channels_t = [[c for c, _, _ in shapes] for shapes in shapes_t]
    if loss == "fitnet":
        return terms.FitNet(channels_s, channels_t)
    if loss == "lsfd":
        return terms.LSFD(channels_s, channels_t, opts.lsfd_kernel, opts.lsfd_tau)  # type: ignore[arg-type]
    if loss == "srkd":
        return terms.SRKD(opts.srkd_stat)  # type: ignore[arg-type]
    if loss == "fakd":
        return terms.FAKD(opts.fakd_chunk, opts.fakd_pool)  # type: ignore[arg-type]
    if loss == "pisr":
        return terms.VID(channels_s, channels_t)
    return terms.FEED(channels_s, channels_t)


def teachers_forward(models: Sequence[nn.Module], taps: Sequence[list[str]], lr: torch.Tensor, ctx: StepContext
                     ) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
    """Each teacher's output (fp32) and its tap maps for ``lr``, without gradients."""
    outputs, features = [], []
    with torch.no_grad():
        for model, names in zip(models, taps, strict=True):
            with capture_features(model, names) as captured:  # type: ignore[arg-type]
                outputs.append(ctx.forward(model, lr).float())
            features.append([captured[t] for t in names])
    return outputs, features


def output_kd(sr: torch.Tensor, teacher_outputs: Sequence[torch.Tensor]) -> torch.Tensor:
    """L1 between the student's output and the teachers' mean output."""
    return nn.functional.l1_loss(sr.float(), torch.stack(list(teacher_outputs)).mean(dim=0))
