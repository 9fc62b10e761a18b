"""The ``[jdsr]`` table: every switch and weight of the method, checked once, and the curriculum weight.

Defaults follow the reconstruction in docs/design/jdsr-method.md (§4.2 loss weights, §5.3 meta step, §7 curriculum and
gap) except where docs/jdsr-results.md measured a better choice; each such choice is said there.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from jdsr_cli.training.methods.distill.options import DistillOptions

from jdsr_cli.errors import UsageError
from jdsr_cli.training.methods.table import TableOptions, check_table_types

NONE = "none"  # gap_threshold = "none" switches the gap gate off (TOML has no null)
META_ORDERS = ("second", "finite-difference")
LOOK_AHEADS = ("adam", "sgd")
GAP_ACTIONS = ("pause-peer", "stop-peer-ml")
ML_OUTPUTS = ("final", "all")
LABEL_LOSSES = ("charbonnier", "l1", "mse")
# ≈ 13/255: L1 for larger errors, quadratic below. The meta gradient is proportional to the label distance's
# curvature ε²/(d² + ε²)^1.5 at d = out − y: ε = 0.01 (before issue 30) kept 3 % of it at a gap of 0.03 (8 grey
# levels, a typical head-label gap) and so heard almost nothing; 0.05 keeps 63 % there and 19 % at 0.1 [I]
CHARBONNIER_EPS = 0.05

OPTIONS: dict[str, Any] = {
    # the parts, each switchable for ablation
    "self_distill": True,  # sectioned target, heads supervised by HR and by soft labels
    "meta": True,  # the label generator meta-learned (else trained by its own L1 to HR)
    "mutual": True,  # the peer fed the superior LR, both directions
    "curriculum": True,  # w = exp(-k(1-T)^2) on the mutual terms (else w = 1)
    "sections": 4,  # target split (IMDN's 6 blocks: 1/2/2/1)
    # loss weights (docs/design/jdsr-method.md §4.2)
    "hr_weight": 1.0,  # L1(final, HR)
    "isr_weight": 1.0,  # L1(intermediate, HR)
    "label_weight": 1.0,  # distance(intermediate, soft label)
    # that distance: the port's L1 has zero curvature, so the look-ahead's gradient for the generator is
    # exactly zero with it (tests/test_train_jdsr.py); Charbonnier is L1 for errors above ~0.01 and smooth below
    "label_loss": "charbonnier",
    # the mutual term, both directions, times the curriculum weight. The port's options say 0.001 and its loss
    # uses 1; with mean L1, 0.001 (times a ramp-up) leaves the term with no measurable effect (§4.3, §13) [I]
    "ml_weight": 0.1,
    "ml_outputs": "final",  # which target outputs the peer's output supervises: final | all
    # curriculum (§7.1)
    "curriculum_k": 5.0,  # 5: the usual ramp-up; 0.5: the port's
    "curriculum_steps": 0,  # T = step / this (0: the run's steps)
    # performance gap (§7.2)
    "gap_threshold": 1.0,  # dB; "none": never gate
    "gap_action": "pause-peer",  # pause-peer | stop-peer-ml
    "gap_every": 0,  # steps between measurements (0: --val-every)
    "gap_images": 8,  # held-out images (centre crops) the gap is measured on
    # meta-learning (§5.3)
    "meta_order": "second",  # second: through the look-ahead | finite-difference: DARTS-style, no 2nd order
    "meta_every": 1,  # a meta step every N steps
    "meta_lr": 2e-4,  # the generator's Adam
    # the look-ahead simulates the target's own optimizer step (adam) or, as before issue 30, SGD with α = lr
    "meta_look_ahead": "adam",  # adam | sgd
    "meta_inner_lr": 0.0,  # the look-ahead's learning rate (0: the target's current lr)
    "meta_fraction": 0.1,  # training images held out for meta batches and gap measurements (by every variant)
    # networks
    "encoder": "",  # the frozen stage-1 encoder ("": the bundled slr-down-x<scale>)
    "peer_arch": "edsr",
    "peer_preset": "tiny",  # the 2-block EDSR peer of the port (~0.2M parameters)
    "peer_init": "",  # a checkpoint to start the peer from ("": from scratch, as the port)
    "peer_lr": 0.0,  # 0: --lr
    # JDSR plus an offline distillation method (issue 15): frozen teachers and one loss of jdsr distill's
    "teachers": [],  # what --model takes; [] = JDSR alone
    "kd_loss": "output",  # output | fitnet | fakd | lsfd | srkd | feed (jdsr distill --kd-loss)
    "kd_weight": 1.0,  # L1(final output, the teachers' mean output), as jdsr distill's w_kd
    "kd_feat_weight": -1.0,  # the feature term (-1: the loss's default), as jdsr distill's w_feat
    "kd_taps_student": [],  # [] = the loss's default taps
    "kd_taps_teacher": [],
}
KD_LOSSES = ("output", "fitnet", "fakd", "lsfd", "srkd", "feed")  # offline, plain-LR teachers

# what the saved networks and optimizer states mean: a resume may not change these
FIXED_ON_RESUME = ("self_distill", "meta", "mutual", "sections", "encoder", "peer_arch", "peer_preset",
                   "meta_lr", "peer_lr", "teachers", "kd_loss", "kd_taps_student", "kd_taps_teacher")


class JdsrOptions(TableOptions):
    """The ``[jdsr]`` table as typed values (see ``OPTIONS`` for each key's meaning)."""

    @property
    def gate(self) -> float | None:
        """The gap threshold in dB, or None when the gate is off (or there is no peer)."""
        if not self.mutual or self.values["gap_threshold"] == NONE:
            return None
        return float(self.values["gap_threshold"])

    @property
    def uses_meta(self) -> bool:
        return bool(self.self_distill and self.meta)

    def distill_options(self) -> DistillOptions | None:
        """The offline distillation part as ``jdsr distill`` options (None without teachers)."""
        if not self.teachers:
            return None
        # local: start-up (the distill package imports its torch methods; `jdsr train` reads flags with this module)
        from jdsr_cli.training.methods.distill.options import check_options as check_distill

        return check_distill({"kd_loss": self.kd_loss, "teachers": list(self.teachers), "w_kd": self.kd_weight,
                              "w_feat": self.kd_feat_weight, "taps_student": list(self.kd_taps_student),
                              "taps_teacher": list(self.kd_taps_teacher)})



def check_options(options: Mapping[str, Any]) -> JdsrOptions:
    """Defaults overlaid with ``options``; a wrong type or value is one UsageError naming ``[jdsr] key``."""
    values = {**OPTIONS, **options}
    check_table_types("jdsr", OPTIONS, values, skip=("gap_threshold",))
    gap = values["gap_threshold"]
    if gap != NONE and (isinstance(gap, bool) or not isinstance(gap, (int, float))):
        raise UsageError(f'[jdsr] gap_threshold = {gap!r}: expected a number or "none"')
    _check_choices(values)
    _check_ranges(values)
    return JdsrOptions(values)


def _check_choices(values: Mapping[str, Any]) -> None:
    for key, choices in (("meta_order", META_ORDERS), ("gap_action", GAP_ACTIONS), ("ml_outputs", ML_OUTPUTS),
                         ("label_loss", LABEL_LOSSES), ("kd_loss", KD_LOSSES),
                         ("meta_look_ahead", LOOK_AHEADS)):
        if values[key] not in choices:
            raise UsageError(f"[jdsr] {key} = {values[key]!r}: choose {' or '.join(choices)}")


def _check_ranges(values: Mapping[str, Any]) -> None:
    at_least_one = ("meta_every", "gap_images")
    for key in at_least_one:
        if values[key] < 1:
            raise UsageError(f"[jdsr] {key} must be at least 1")
    if values["sections"] < 2:
        raise UsageError("[jdsr] sections must be at least 2 (one head and the final output)")
    for key in ("hr_weight", "isr_weight", "label_weight", "ml_weight", "curriculum_k", "curriculum_steps",
                "gap_every", "meta_inner_lr", "peer_lr"):
        if values[key] < 0 or not math.isfinite(values[key]):
            raise UsageError(f"[jdsr] {key} must be a finite number of at least 0")
    if values["meta_lr"] <= 0:
        raise UsageError("[jdsr] meta_lr must be above 0")
    if not 0 < values["meta_fraction"] < 1:
        raise UsageError("[jdsr] meta_fraction must be between 0 and 1")
    if values["kd_weight"] < 0 or not math.isfinite(values["kd_weight"]):
        raise UsageError("[jdsr] kd_weight must be a finite number of at least 0")
    if values["gap_threshold"] != NONE and values["gap_threshold"] < 0:
        raise UsageError('[jdsr] gap_threshold must be at least 0 dB, or "none"')


def parse_gap_threshold(text: str | None) -> float | str | None:
    """``--gap-threshold``: a number of dB, or ``none`` (the gate off)."""
    if text is None or text.strip().lower() == NONE:
        return None if text is None else NONE
    try:
        return float(text)
    except ValueError:
        raise UsageError(f"--gap-threshold {text!r}: a number of dB or none") from None


def curriculum_weight(step: int, span: int, k: float) -> float:
    """w = exp(-k (1 - T)^2), T = step / span clamped to [0, 1] (docs/design/jdsr-method.md §7.1): ramps to 1 at ``span``."""
    t = min(max(step / max(span, 1), 0.0), 1.0)
    return math.exp(-k * (1.0 - t) ** 2)


def label_distance(kind: str, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean distance between an intermediate output and its soft label (``label_loss``), in fp32."""
    import torch  # local: start-up (`jdsr train` reads its flags with this module)

    diff = at_least_fp32(a) - at_least_fp32(b)
    if kind == "l1":
        return diff.abs().mean()
    if kind == "mse":
        return diff.square().mean()
    return (torch.sqrt(diff.square() + CHARBONNIER_EPS**2) - CHARBONNIER_EPS).mean()


def at_least_fp32(t: torch.Tensor) -> torch.Tensor:
    """Losses in fp32 (autocast's bf16 outputs are cast up); float64 stays float64."""
    import torch  # local: start-up (`jdsr train` reads its flags with this module)

    return t.float() if t.dtype in (torch.bfloat16, torch.float16) else t
