"""``jdsr distill``: a student trained from frozen teachers with the SR distillation losses of the literature.

``options`` is the ``[distill]`` table, ``terms`` the feature losses (one module per method, its adapters
trained with the student), ``teachers`` what any method needs of a frozen teacher, ``method`` the offline
method and ``mutual`` / ``adversarial`` the online ones (their ``--teacher`` networks train as peers); ``build``
picks the one a run's ``kd_loss`` needs. Every formula and default, with what is a reconstruction, is in
``docs/design/distillation-methods.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from jdsr_cli.training.methods.distill.adversarial import AdversarialDistill
from jdsr_cli.training.methods.distill.method import Distill
from jdsr_cli.training.methods.distill.mutual import MutualDistill
from jdsr_cli.training.methods.distill.options import OPTIONS

if TYPE_CHECKING:
    from jdsr_cli.training.config import TrainConfig

ONLINE_METHODS: dict[str, type[Distill]] = {"dml": MutualDistill, "afd": AdversarialDistill}


def build(config: TrainConfig) -> Distill:
    """The distillation ``config``'s ``[distill] kd_loss`` names: an online loss trains its peers."""
    kd_loss = config.method_options.get("kd_loss", OPTIONS["kd_loss"])
    return ONLINE_METHODS.get(kd_loss, Distill)(config)
