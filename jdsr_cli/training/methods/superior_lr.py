"""``superior-lr`` (JDSR stage 1): encoder HR → LR and decoder LR → HR trained together.

The loss is ``lr_weight·L1(E(HR), bicubic LR) + sr_weight·L1(D(E(HR)), HR)``; ``best/encoder`` and
``best/decoder`` are the two checkpoints. Its options are the ``[superior-lr]`` table (``OPTIONS``); run folders
written before it had one hold them as top-level keys, which ``training.config`` still reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from jdsr_cli.archs import REGISTRY
from jdsr_cli.archs.registry import ArchConfig
from jdsr_cli.checkpoints.lineage import init_record
from jdsr_cli.errors import UsageError
from jdsr_cli.ops.metrics import MetricConvention
from jdsr_cli.training.method_api import InitReport, Validation
from jdsr_cli.training.methods.nets import arch_config, build_net, copy_matching, load_init
from jdsr_cli.training.methods.scoring import to_batch, to_uint8
from jdsr_cli.training.methods.supervised import SingleNetMethod
from jdsr_cli.training.methods.table import TableOptions, check_table_types

if TYPE_CHECKING:
    from jdsr_cli.training.config import TrainConfig
    from jdsr_cli.training.method_api import Batch, Losses

ENCODER = "slr-encoder"
ROUNDINGS = ("ste", "none")  # ste: round, straight-through gradient | none: train on the unrounded LR

OPTIONS: dict[str, Any] = {
    "encoder_preset": "small",  # the encoder's size (a preset of slr-encoder)
    "encoder_kwargs": {},  # its build arguments over the preset's
    "lr_weight": 0.1,  # L1(encoder(HR), bicubic LR); the port's 1 keeps E(HR) ≈ bicubic (docs/training.md)
    "sr_weight": 1.0,  # L1(decoder(encoder(HR)), HR)
    "slr_rounding": "ste",  # how training treats the 8-bit rounding (ROUNDINGS)
}
FIXED_ON_RESUME = ("encoder_preset", "encoder_kwargs")  # the encoder's shape: what its saved tensors mean


def check_options(options: Mapping[str, Any]) -> TableOptions:
    """Defaults overlaid with ``options``; a wrong type or value is one UsageError naming ``[superior-lr] key``."""
    values = {**OPTIONS, **options}
    check_table_types("superior-lr", OPTIONS, values)
    if values["slr_rounding"] not in ROUNDINGS:
        raise UsageError(f"[superior-lr] slr_rounding = {values['slr_rounding']!r}: choose {' or '.join(ROUNDINGS)}")
    REGISTRY.get(ENCODER).preset_kwargs(values["encoder_preset"])
    return TableOptions(values)


class RoundTrip(nn.Module):
    """Encoder then decoder; ``forward(hr)`` returns (superior LR, SR) for one loss over both."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module, rounding: str = "ste") -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.rounding = rounding

    def encode(self, hr: torch.Tensor) -> torch.Tensor:
        if self.training and self.rounding == "none":
            return self.encoder.continuous(hr)  # type: ignore[operator]
        return self.encoder(hr)  # clamped and rounded to 8-bit levels (straight-through gradient)

    def forward(self, hr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        slr = self.encode(hr)
        return slr, self.decoder(slr)


class SuperiorLR(SingleNetMethod):
    """JDSR stage 1: the superior-LR encoder and its decoder, trained jointly from scratch."""

    name = "superior-lr"
    OPTIONS = OPTIONS
    FIXED_ON_RESUME = FIXED_ON_RESUME

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> None:
        check_options(options)

    def build(self, config: TrainConfig) -> None:
        opts = check_options(config.method_options)
        self.scale = config.scale
        self.lr_weight = opts.lr_weight
        self.sr_weight = opts.sr_weight
        self.arch_config = arch_config(config)  # the decoder: any registry SR architecture
        encoder_kwargs = REGISTRY.get(ENCODER).preset_kwargs(opts.encoder_preset)
        encoder_kwargs.update(opts.encoder_kwargs)
        self.encoder_config = ArchConfig(ENCODER, config.scale, encoder_kwargs)
        self.net = RoundTrip(build_net(self.encoder_config), build_net(self.arch_config), opts.slr_rounding)

    def describe(self) -> str:
        return f"superior-LR encoder + {self.arch_config.arch} decoder ×{self.scale}"

    def batch_input(self, lr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        return hr

    def losses(self, output: tuple[torch.Tensor, torch.Tensor], batch: Batch) -> Losses:
        slr, sr = output
        loss_lr = nn.functional.l1_loss(slr.float(), batch.lr)
        loss_sr = nn.functional.l1_loss(sr.float(), batch.hr)
        return {"loss": self.lr_weight * loss_lr + self.sr_weight * loss_sr,
                "loss_lr": loss_lr.detach(), "loss_sr": loss_sr.detach()}

    def initialise_from(self, spec: str) -> InitReport:
        """A superior-LR run folder (``encoder/`` + ``decoder/``), either half of a bundled pair (both halves
        are loaded), or one SR checkpoint for the decoder."""
        folder = Path(spec).expanduser()
        if (folder / "encoder").is_dir() and (folder / "decoder").is_dir():
            halves = [load_init(str(folder / "encoder")), load_init(str(folder / "decoder"))]
        else:
            first = load_init(spec)
            pair = first.entry.pair if first.entry is not None else None
            halves = [first, *([load_init(pair)] if pair else [])]
        copied = 0
        for loaded in halves:
            target = self.net.encoder if loaded.config.arch == self.encoder_config.arch else self.net.decoder
            copied += copy_matching(loaded.model.state_dict(), target)
        return InitReport(copied, len(self.net.state_dict()), [init_record(loaded) for loaded in halves])

    def exports(self, net: nn.Module) -> dict[str, tuple[nn.Module, ArchConfig]]:
        return {"encoder": (net.encoder, self.encoder_config), "decoder": (net.decoder, self.arch_config)}

    @torch.inference_mode()
    def validate(self, net: nn.Module, pairs: list[Any], device: torch.device) -> Validation:
        """Round trip D(round(E(HR))) vs HR (picks the best), and how LR-like E(HR) stays (vs bicubic LR)."""
        convention = MetricConvention.standard(self.scale)
        psnrs, ssims, lr_psnrs = [], [], []
        for pair in pairs:
            slr = net.encoder(to_batch(pair.hr, device))
            sr = to_uint8(net.decoder(slr))
            psnrs.append(convention.psnr(sr, pair.hr))
            ssims.append(convention.ssim(sr, pair.hr))
            lr_psnrs.append(convention.psnr(to_uint8(slr), pair.lr))
        return Validation(float(np.mean(psnrs)), float(np.mean(ssims)), len(psnrs),
                          {"val_lr_psnr": float(np.mean(lr_psnrs))})
