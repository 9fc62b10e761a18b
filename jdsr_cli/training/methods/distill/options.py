"""The ``[distill]`` table: which loss, which teachers, which taps, the weights; checked once.

Defaults reproduce the sources where they exist (docs/design/distillation-methods.md §14): FAKD β = 10 with output KD;
the others are reconstructions with weights sized so that each term starts near the L1 term's magnitude.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from jdsr_cli.errors import UsageError
from jdsr_cli.training.methods.table import TableOptions, check_table_types

# loss → (w_feat default, reconstruction?, one line for --help)
LOSSES: dict[str, tuple[float, bool, str]] = {
    "output": (0.0, False, "output KD: L1 to HR + L1 to the teachers' mean output"),
    "fitnet": (0.1, False, "FitNet hints: a 1×1 regressor maps student features to the teacher's (L1)"),
    # FAKD's β = 10 sits against α = 0.5 pixel terms on a 0..255 range: 10 / 0.5 / 255 ≈ 0.08 on our 0..1
    "fakd": (0.08, False, "FAKD: L1 between N×N spatial affinity matrices (channel-count free)"),
    "lsfd": (0.1, True, "LSFD: local k×k regressor, per-pixel error weighted by a detached soft attention"),
    "srkd": (0.1, True, "SRKD: channel-statistic maps (energy, mean, max or std), normalised per sample"),
    "feed": (0.1, True, "FEED: one 3-conv transform per teacher on body_tail, Factor-Transfer distance"),
    # the paper's λ2 with mean reduction: the likelihood term is tiny, the decoder init does most (§5)
    "pisr": (1e-6, False, "PISR: VID likelihood of a privileged teacher's features (a superior-LR pair)"),
    # online: the --teacher models are peers trained with the student (w_kd weighs the mutual term)
    "dml": (0.0, True, "DML: student and peers learn together, each also pulled to the others' outputs"),
    "afd": (0.0, True, "AFD: DML plus feature-map discriminators each network learns to fool"),
}
ONLINE = ("dml", "afd")  # losses whose --teacher networks are trainable peers, not frozen teachers
# the weights other than FAKD's are ours (scale-free terms start near 1, L1 near 0.05): starting points to tune
STATS = ("energy", "mean", "max", "std")

OPTIONS: dict[str, Any] = {
    "kd_loss": "output",  # one of LOSSES (--kd-loss; before, --method and the key "loss")
    "teachers": [],  # what --model takes: bundled names, checkpoint files or folders, hf:// references
    "taps_student": [],  # [] = the body in thirds plus body_tail (FEED: body_tail)
    "taps_teacher": [],  # [] = the same rule on the teacher
    "w_hr": 1.0,  # L1(student, HR)
    "w_kd": 1.0,  # L1(student, mean of the teachers' outputs)
    "w_feat": -1.0,  # the feature term (-1: the loss's default, see LOSSES)
    "init_from_teacher": False,  # start the student from the first teacher's matching tensors
    "fakd_pool": 1,  # FAKD: k×k average pooling before the affinity (memory ÷ k⁴)
    "fakd_chunk": 1024,  # FAKD: affinity rows per chunk (recomputed in backward, so memory stays bounded)
    "lsfd_kernel": 3,  # LSFD: the regressor's kernel (1 is FitNet-like)
    "lsfd_tau": 1.0,  # LSFD: softmax temperature of the attention
    "srkd_stat": "energy",
    "peer_init": "scratch",  # DML: peers start from scratch (the paper's cohort) or from the --teacher weights
    "afd_lr": 2e-5,  # AFD: the adversarial feature steps and the discriminators (the paper's slower rate)
    "dml_ramp": 0.1,  # DML: the mutual weight ramps up linearly over this fraction of the run (early peers are poor)
}

FIXED_ON_RESUME = ("kd_loss", "teachers", "taps_student", "taps_teacher", "lsfd_kernel", "peer_init")


class DistillOptions(TableOptions):
    """The ``[distill]`` table as typed values (see ``OPTIONS``)."""

    @property
    def feature_weight(self) -> float:
        weight = float(self.values["w_feat"])
        return LOSSES[self.kd_loss][0] if weight < 0 else weight


def check_options(options: Mapping[str, Any]) -> DistillOptions:
    """Defaults overlaid with ``options``; a wrong type or value is one UsageError naming ``[distill] key``."""
    values = {**OPTIONS, **options}
    check_table_types("distill", OPTIONS, values)
    parse_kd_loss(values["kd_loss"], "[distill] kd_loss =")
    if values["peer_init"] not in ("scratch", "teacher"):
        raise UsageError(f"[distill] peer_init = {values['peer_init']!r}: choose scratch or teacher")
    if not 0 <= values["dml_ramp"] <= 1:
        raise UsageError("[distill] dml_ramp must be between 0 and 1")
    if values["srkd_stat"] not in STATS:
        raise UsageError(f"[distill] srkd_stat = {values['srkd_stat']!r}: choose {', '.join(STATS)}")
    for key in ("w_hr", "w_kd", "lsfd_tau", "afd_lr"):
        if not (math.isfinite(values[key]) and values[key] >= 0):
            raise UsageError(f"[distill] {key} must be a finite number of at least 0")
    for key in ("fakd_pool", "fakd_chunk", "lsfd_kernel"):
        if values[key] < 1:
            raise UsageError(f"[distill] {key} must be a whole number of at least 1")
    if values["lsfd_kernel"] % 2 == 0:
        raise UsageError("[distill] lsfd_kernel must be odd (1, 3, 5...)")
    return DistillOptions(values)


def parse_kd_loss(text: str, option: str = "--kd-loss") -> str:
    """``--kd-loss`` (or its former spelling ``--method``, named by ``option``): one of ``LOSSES``."""
    if text not in LOSSES:
        raise UsageError(f"{option} {text!r}: choose {', '.join(LOSSES)}")
    return text


def default_taps(names: list[str], loss: str) -> list[str]:
    """The body in thirds (the end of the first and second third) plus ``body_tail``, as FAKD taps EDSR;
    FEED and PISR read ``body_tail`` only (PISR's last feature before the upsampler)."""
    body = [n for n in names if n.startswith("body.")]
    if loss in ("feed", "pisr") or len(body) < 3:
        return ["body_tail"]
    third = len(body) / 3
    return [body[round(third) - 1], body[round(2 * third) - 1], "body_tail"]
