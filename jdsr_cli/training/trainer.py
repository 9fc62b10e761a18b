"""Supervised training runs: the loop every training method builds on.

A run folder holds ``config.toml`` (the resolved options), ``log.jsonl`` (one record per logged step and
per validation), ``last/`` and ``best/`` (checkpoints ``jdsr upscale`` loads; EMA weights when EMA is on)
and ``last/training_state.pt`` (optimizer, scheduler, EMA, RNG states, step). Everything is written
atomically, so a killed run loses at most the steps since its last save and keeps its last good
checkpoint; a non-finite loss stops the run without saving.
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from jdsr_cli.errors import JdsrError
from jdsr_cli.training.config import TrainConfig

STATE_NAME = "training_state.pt"


class TrainingError(JdsrError):
    """The run cannot go on (non-finite loss, unusable data); the last good checkpoint is kept."""


@dataclass
class Progress:
    step: int
    steps: int
    loss: float
    lr: float
    it_per_s: float
    val_psnr: float | None


@dataclass
class RunResult:
    run_dir: Path
    steps: int
    best_psnr: float | None
    losses: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class Distributed:
    """Where this process sits in a ``torchrun`` job (rank 0 of 1 when run directly)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> Distributed:
        import os

        return cls(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                   int(os.environ.get("LOCAL_RANK", 0)))

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _lr_factor(config: TrainConfig) -> Callable[[int], float]:
    if config.schedule == "multistep":
        return lambda step: config.gamma ** sum(step >= m for m in config.milestones)
    floor = config.min_lr_ratio
    return lambda step: floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(step, config.steps) / config.steps))


class Trainer:
    """One training run of any method (``jdsr_cli.training.methods``), from step 0 or ``config.resume``."""

    def __init__(self, config: TrainConfig, *, on_progress: Callable[[Progress], None] | None = None,
                 log: Callable[[str], None] = print) -> None:
        from jdsr_cli.engine.device import resolve_device
        from jdsr_cli.training.methods import build_method

        self.config = config
        self.on_progress = on_progress
        self.log = log
        self.dist = Distributed.from_env()
        self.device = resolve_device(config.device)
        if self.dist.world > 1:
            self.device = self._join_process_group()
        torch.manual_seed(config.seed)
        self.method = build_method(config)
        self.init_from: list[dict[str, Any]] = []  # the --init checkpoints' own recipes (kept across resumes)
        self.model: nn.Module = self.method.net  # the supervised network itself, or e.g. encoder + decoder
        if config.init and not config.resume:  # a resumed run's weights and lineage come from its state
            self._initialise_from(config.init)
        self.memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
        self.model.to(self.device, memory_format=self.memory_format)
        self.autocast_dtype = torch.bfloat16 if config.precision == "bf16" else None
        self.train_model: nn.Module = self.model
        if self.dist.world > 1:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self.train_model = nn.parallel.DistributedDataParallel(self.model, device_ids=device_ids)
        self.ema = copy.deepcopy(self.model).requires_grad_(False) if config.ema_decay > 0 else None
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr, betas=(0.9, 0.99))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, _lr_factor(config))
        self.step = 0
        self.train_seconds = 0.0  # wall-clock of the training loop, summed over resumed sessions
        self.commands = [_command_line()]  # the command that started the run, then each resume's
        self.best_psnr: float | None = None
        self.run_dir = Path(config.out)

    def _initialise_from(self, spec: str) -> None:
        """Copy the tensors whose names and shapes match (e.g. the body of a ×4 model into a ×2 one)."""
        report = self.method.initialise_from(spec)
        if not report.copied:
            raise TrainingError(f"--init {spec}: no tensor matches {self.method.describe()}")
        self.init_from = report.sources
        self.log(f"initialised {report.copied}/{report.total} tensors from {spec}")

    def _join_process_group(self) -> torch.device:
        """NCCL on GPUs (one per local rank), gloo on the CPU; the same seed gives every rank the same init."""
        import torch.distributed as dist

        cuda = self.device.type == "cuda"
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if cuda else "gloo")
        if cuda:
            torch.cuda.set_device(self.dist.local_rank)
            return torch.device("cuda", self.dist.local_rank)
        return self.device

    # ---- state ---------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "best_psnr": self.best_psnr,
            "train_seconds": self.train_seconds,
            "commands": self.commands,
            "init_from": self.init_from,
        }

    def load_state(self, folder: Path) -> None:
        """Continue from ``folder/last``: weights, optimizer, scheduler, EMA, RNG and step, on any device."""
        path = folder / "last" / STATE_NAME
        if not path.is_file():
            raise TrainingError(f"{folder}: no {STATE_NAME} under last/ to resume from")
        state = torch.load(path, map_location="cpu", weights_only=True)
        self.model.load_state_dict(state["model"])
        if self.ema is not None and state["ema"] is not None:
            self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        self.step = int(state["step"])
        self.best_psnr = state["best_psnr"]
        self.train_seconds = float(state.get("train_seconds", 0.0))
        self.commands = [*state.get("commands", []), *self.commands]  # earlier sessions', then this one
        if "init_from" in state:  # what the run started from, even if that checkpoint has changed since
            self.init_from = state["init_from"]

    # ---- run -----------------------------------------------------------------------------------
    def run(self, stop_at: int | None = None) -> RunResult:
        """Train to ``config.steps`` (or stop early after ``stop_at``, as an interruption would)."""
        from jdsr_cli.io.atomic import atomic_write_text
        from jdsr_cli.training.dataset import PatchDataset, StepSampler, build_data

        config = self.config
        train_pairs, self.val_pairs, skipped = build_data(config)
        for reason in skipped if self.dist.is_main else []:
            self.log(f"skipped: {reason}")
        if not train_pairs:
            raise TrainingError(f"{config.data}: no usable training image")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if config.resume:
            self.load_state(Path(config.resume))
            if self.dist.is_main:
                self.log(f"resumed at step {self.step} from {config.resume}")
        if self.dist.is_main:
            atomic_write_text(self.run_dir / "config.toml", config.to_toml())

        dataset = PatchDataset(train_pairs, config.scale, config.patch_size, config.seed)
        sampler = StepSampler(self.step, config.steps, config.batch_size, self.dist.rank, self.dist.world)
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=config.batch_size, sampler=sampler,
            num_workers=config.workers, pin_memory=self.device.type == "cuda",
            persistent_workers=False, drop_last=True,
        )
        result = RunResult(self.run_dir, config.steps, self.best_psnr)
        window: list[float] = []
        tick, val_psnr = time.perf_counter(), None
        self.model.train()
        clock = time.perf_counter()
        for lr_batch, hr_batch in loader:
            if stop_at is not None and self.step >= stop_at:
                break
            now = time.perf_counter()
            self.train_seconds += now - clock
            clock = now
            loss = self._train_step(lr_batch.to(self.device, non_blocking=True), hr_batch.to(self.device, non_blocking=True))
            self.step += 1
            window.append(loss)
            result.losses.append(loss)
            if not self.dist.is_main:
                continue
            if self.step % config.val_every == 0 or self.step == config.steps:
                val_psnr = self._validate_and_keep_best()
            if self.step % config.save_every == 0 or self.step in (config.steps, stop_at):
                self._save("last")
            if self.step % config.log_every == 0 or self.step == config.steps:
                rate = len(window) / max(time.perf_counter() - tick, 1e-9)
                record = {"step": self.step, "loss": float(np.mean(window)), "lr": self.scheduler.get_last_lr()[0],
                          "it_per_s": rate, "elapsed_s": round(self.train_seconds, 1)}
                self._append_log(record)
                if self.on_progress is not None:
                    self.on_progress(Progress(self.step, config.steps, record["loss"], record["lr"], rate, val_psnr))
                window, tick = [], time.perf_counter()
        result.best_psnr = self.best_psnr
        if self.dist.world > 1:
            import torch.distributed as dist

            dist.barrier()
        return result

    def _forward(self, model: nn.Module, inputs: torch.Tensor) -> Any:
        """The net in the run's precision and memory format (the method's loss works in fp32)."""
        inputs = inputs.contiguous(memory_format=self.memory_format)
        with torch.autocast(self.device.type, dtype=self.autocast_dtype or torch.float32,
                            enabled=self.autocast_dtype is not None):
            return model(inputs)

    def _train_step(self, lr_batch: torch.Tensor, hr_batch: torch.Tensor) -> float:
        outputs = self._forward(self.train_model, self.method.batch_input(lr_batch, hr_batch))
        loss = self.method.loss(outputs, lr_batch, hr_batch)
        if not torch.isfinite(self._mean_across_ranks(loss.detach())):
            raise TrainingError(
                f"non-finite loss at step {self.step + 1}; stopped. The last good checkpoint is in "
                f"{self.run_dir / 'last'} (try a lower --lr)"
            )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        if self.ema is not None:
            decay = ema_decay_at(self.config.ema_decay, self.step)
            with torch.no_grad():
                for ema_p, p in zip(self.ema.parameters(), self.model.parameters(), strict=True):
                    ema_p.lerp_(p, 1 - decay)
        return loss.item()

    def _mean_across_ranks(self, value: torch.Tensor) -> torch.Tensor:
        """Every rank sees the same number, so all stop together on a non-finite loss (no hang)."""
        if self.dist.world == 1:
            return value
        import torch.distributed as dist

        total = value.clone()
        dist.all_reduce(total)
        return total / self.dist.world

    # ---- validation and checkpoints ------------------------------------------------------------
    def deployed_model(self) -> nn.Module:
        return self.ema if self.ema is not None else self.model

    def _validate_and_keep_best(self) -> float:
        from jdsr_cli.ops.metrics import MetricConvention

        net = self.deployed_model()
        net.eval()
        scores = self.method.validate(net, self.val_pairs, self.device)
        self.model.train()
        label = MetricConvention.standard(self.config.scale).psnr_label
        self._append_log({"step": self.step, "val_psnr": scores.psnr, "val_ssim": scores.ssim, **scores.extra,
                          "convention": label})
        if self.best_psnr is None or scores.psnr > self.best_psnr:
            self.best_psnr = scores.psnr
            self._save("best", metrics={"val": {"psnr": scores.psnr, "ssim": scores.ssim, "images": scores.images,
                                                **scores.extra}})
        return scores.psnr

    def _save(self, which: str, metrics: dict[str, Any] | None = None) -> None:
        from jdsr_cli.checkpoints.save import write_checkpoint
        from jdsr_cli.checkpoints.swap import replace_folder

        folder = self.run_dir / which
        recipe = {"method": self.config.method, "step": self.step, "train_seconds": round(self.train_seconds),
                  "hardware": _hardware(self.device), "command": self.commands[0],
                  "resumed_with": self.commands[1:], **({"init_from": self.init_from} if self.init_from else {}),
                  "config": json.loads(json.dumps(
                      {k: v for k, v in vars(self.config).items() if v is not None}))}
        deployed = copy.deepcopy(self.deployed_model()).cpu()
        with replace_folder(folder) as staging:  # parts and training state change as one: a kill keeps a whole
            for part, (module, arch_config) in self.method.exports(deployed).items():
                name = "-".join(filter(None, (self.run_dir.name, part, which)))
                write_checkpoint(staging / part if part else staging, module, arch_config, name=name,
                                 training=recipe, metrics=metrics)
            if which == "last":
                with open(staging / STATE_NAME, "wb") as handle:
                    torch.save(_to_cpu(self.state_dict()), handle)

    def _append_log(self, record: dict[str, Any]) -> None:
        with open(self.run_dir / "log.jsonl", "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")


def ema_decay_at(decay: float, step: int) -> float:
    """EMA decay with a warm-up: min(decay, (1 + step) / (10 + step)).

    A plain 0.999 EMA still holds 37% of the random initial weights after 1000 steps (0.999^1000), so
    early validations and short runs would score the EMA far below the trained weights; the warm-up
    forgets the start quickly and reaches the nominal decay after ~9000 steps (for 0.999).
    """
    return min(decay, (1 + step) / (10 + step))


def _command_line() -> str:
    """How this process was started, e.g. 'jdsr train --config configs/imdn-x4.toml' (for the recipe)."""
    import shlex
    import sys

    program = Path(sys.argv[0]).name if sys.argv else "python"
    if program in ("__main__.py", "-m"):
        program = "python -m jdsr_cli"
    return shlex.join([program, *sys.argv[1:]])


def _hardware(device: torch.device) -> str:
    """E.g. 'cpu: x86_64, 2 threads' or 'cuda: NVIDIA H100 80GB HBM3' (recorded with each checkpoint)."""
    import platform

    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return f"{device.type}: {platform.machine()}, {torch.get_num_threads()} threads"


def _to_cpu(value: Any) -> Any:
    """Move every tensor of a nested state to the CPU, so a run resumes on any device."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_cpu(v) for v in value)
    return value
