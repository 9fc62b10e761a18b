"""The training methods: what a run trains, its losses, how it is validated and what it exports.

Every method is one module or package here on one base (``base.MethodBase``), registered by name in
``training.registry``; the contract is ``training.method_api``, the run around it (Trainer, StepContext,
config, state, resume, data) stays in ``training/``. Adding a method is one module and one registry line.

- ``supervised``: one SR network, L1 to HR (``supervised.py``, with the one-network shape).
- ``superior-lr``: JDSR stage 1, the superior-LR encoder and its decoder (``superior_lr.py``).
- ``jdsr``: joint distillation of one upscaler (``jdsr/``).
- ``distill``: a student from frozen teachers or online peers (``distill/``).

What several methods share has public names: ``nets`` (the run's architecture, ``--init``), ``scoring``
(validation PSNR/SSIM), ``table`` (a method's TOML table, typed and checked).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from jdsr_cli.training.registry import method_factory

if TYPE_CHECKING:
    from jdsr_cli.training.config import TrainConfig
    from jdsr_cli.training.method_api import TrainingMethod


def build_method(config: TrainConfig) -> TrainingMethod:
    """The method ``config.method`` names (training.registry), built from the run's options."""
    return method_factory(config.method)(config)
