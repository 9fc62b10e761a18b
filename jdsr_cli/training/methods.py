"""The built-in training methods: what a run trains, its losses, how it is validated and what it exports.

Both are one-network methods (``training.single_net``): the contract is ``training.method_api``, the names
``training.registry``. ``net`` is an ``nn.Module`` whose ``forward`` takes the method's batch input, so DDP
sees every parameter used; the checkpoints exported are registry architectures that ``jdsr upscale`` /
``jdsr downscale`` load.

- ``supervised``: one SR network, L1 to HR. ``net`` is the network itself, so the run folder's ``best/``
  and ``last/`` are ordinary checkpoints.
- ``superior-lr`` (JDSR stage 1): encoder HR → LR and decoder LR → HR trained together with
  ``lr_weight·L1(E(HR), bicubic LR) + sr_weight·L1(D(E(HR)), HR)``. ``best/encoder`` and ``best/decoder``
  are the two checkpoints.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from jdsr_cli.archs.registry import ArchConfig
from jdsr_cli.checkpoints.lineage import init_record
from jdsr_cli.errors import UsageError
from jdsr_cli.training.config import TrainConfig
from jdsr_cli.training.method_api import Batch, InitReport, Losses, TrainingMethod, Validation
from jdsr_cli.training.single_net import SingleNetMethod

if TYPE_CHECKING:
    from jdsr_cli.checkpoints.load import LoadedModel

__all__ = ["InitReport", "RoundTrip", "SuperiorLR", "Supervised", "Validation", "build_method", "score_upscaler"]


def _to_batch(image: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1)[None].float().div(255).to(device)


def _to_uint8(batch: torch.Tensor) -> np.ndarray:
    from jdsr_cli.io.quantize import quantize_tensor

    return quantize_tensor(batch[0], 8).permute(1, 2, 0).cpu().numpy()


def _build(config: ArchConfig) -> nn.Module:
    from jdsr_cli.archs import REGISTRY

    return REGISTRY.build(config)


def _arch_config(config: TrainConfig) -> ArchConfig:
    from jdsr_cli.archs import REGISTRY

    spec = REGISTRY.get(config.arch)
    if spec.direction != "up":
        raise UsageError(f"--arch {config.arch} is a downscaler; train it with --method superior-lr")
    kwargs = spec.preset_kwargs(config.preset)
    kwargs.update(config.arch_kwargs)
    if config.init and config.preset is None and not config.arch_kwargs:
        kwargs = _init_layout(config.init, config.arch) or kwargs
    return ArchConfig(config.arch, config.scale, kwargs)


def _init_layout(spec: str, arch: str) -> dict[str, Any] | None:
    """The build arguments of the ``--init`` model when it is of the same architecture and the run names neither a
    preset nor build arguments: fine-tuning ``imdn-x4`` gives an ``imdn-x4`` (its static channel statistics too)."""
    loaded = load_init(spec)
    return dict(loaded.config.kwargs) if loaded.config.arch == arch else None


def load_init(spec: str) -> LoadedModel:
    """What ``--init`` names: a checkpoint file or folder, an hf:// reference or a bundled model's name."""
    from jdsr_cli.checkpoints.resolve import resolve_model

    return resolve_model(spec, scale=None, option="--init")


def copy_matching(source: Mapping[str, torch.Tensor], target: nn.Module) -> int:
    """Load the tensors whose names and shapes match (e.g. a ×4 body into a ×2 model); returns how many."""
    own = target.state_dict()
    shared = {k: v for k, v in source.items() if k in own and own[k].shape == v.shape}
    target.load_state_dict(shared, strict=False)
    return len(shared)


def initialise_net(net: nn.Module, spec: str) -> InitReport:
    """``--init`` for a method that deploys one SR network: copy what matches, record where it came from."""
    loaded = load_init(spec)
    copied = copy_matching(loaded.model.state_dict(), net)
    return InitReport(copied, len(net.state_dict()), [init_record(loaded)])


class Supervised(SingleNetMethod):
    """One SR network trained with L1 to HR."""

    name = "supervised"

    def build(self, config: TrainConfig) -> None:
        self.scale = config.scale
        self.arch_config = _arch_config(config)
        self.net = _build(self.arch_config)

    def describe(self) -> str:
        return f"{self.arch_config.arch} ×{self.scale}"

    def batch_input(self, lr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        return lr

    def losses(self, output: torch.Tensor, batch: Batch) -> Losses:
        return {"loss": nn.functional.l1_loss(output.float(), batch.hr)}

    def initialise_from(self, spec: str) -> InitReport:
        return initialise_net(self.net, spec)

    def exports(self, net: nn.Module) -> dict[str, tuple[nn.Module, ArchConfig]]:
        return {"": (net, self.arch_config)}

    def validate(self, net: nn.Module, pairs: list[Any], device: torch.device) -> Validation:
        return score_upscaler(net, pairs, device, self.scale)


@torch.inference_mode()
def score_upscaler(net: nn.Module, pairs: list[Any], device: torch.device, scale: int,
                   feed: Callable[[Any], torch.Tensor] | None = None, teacher: nn.Module | None = None) -> Validation:
    """PSNR-Y/SSIM-Y (border = scale) of ``net`` on validation pairs, fed each pair's LR (or ``feed(pair)``).

    With a ``teacher`` the target is its output on the same input (a distillation without the HR term picks its
    best checkpoint by how close it comes to the teacher) and PSNR-Y to the HR is logged as ``hr_psnr``."""
    from jdsr_cli.ops.metrics import MetricConvention

    convention = MetricConvention.standard(scale)
    psnrs, ssims, hr_psnrs = [], [], []
    for pair in pairs:
        x = feed(pair) if feed is not None else _to_batch(pair.lr, device)
        sr = _to_uint8(net(x))
        target = pair.hr if teacher is None else _to_uint8(teacher(x))
        psnrs.append(convention.psnr(sr, target))
        ssims.append(convention.ssim(sr, target))
        if teacher is not None:
            hr_psnrs.append(convention.psnr(sr, pair.hr))
    extra = {"hr_psnr": float(np.mean(hr_psnrs))} if hr_psnrs else {}
    return Validation(float(np.mean(psnrs)), float(np.mean(ssims)), len(psnrs), extra)


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

    def build(self, config: TrainConfig) -> None:
        from jdsr_cli.archs import REGISTRY

        self.scale = config.scale
        self.lr_weight = config.lr_weight
        self.sr_weight = config.sr_weight
        self.arch_config = _arch_config(config)  # the decoder: any registry SR architecture
        encoder_kwargs = REGISTRY.get("slr-encoder").preset_kwargs(config.encoder_preset)
        encoder_kwargs.update(config.encoder_kwargs)
        self.encoder_config = ArchConfig("slr-encoder", config.scale, encoder_kwargs)
        self.net = RoundTrip(_build(self.encoder_config), _build(self.arch_config), config.slr_rounding)

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
        from jdsr_cli.ops.metrics import MetricConvention

        convention = MetricConvention.standard(self.scale)
        psnrs, ssims, lr_psnrs = [], [], []
        for pair in pairs:
            slr = net.encoder(_to_batch(pair.hr, device))
            sr = _to_uint8(net.decoder(slr))
            psnrs.append(convention.psnr(sr, pair.hr))
            ssims.append(convention.ssim(sr, pair.hr))
            lr_psnrs.append(convention.psnr(_to_uint8(slr), pair.lr))
        return Validation(float(np.mean(psnrs)), float(np.mean(ssims)), len(psnrs),
                          {"val_lr_psnr": float(np.mean(lr_psnrs))})


def build_method(config: TrainConfig) -> TrainingMethod:
    """The method ``config.method`` names (training.registry), built from the run's options."""
    from jdsr_cli.training.registry import method_class

    return method_class(config.method)(config)
