"""Supervised training runs: the loop every training method builds on.

A run folder holds ``config.toml`` (the resolved options), ``log.jsonl`` (one record per logged step and
per validation), ``last/`` and ``best/`` (checkpoints ``jdsr upscale`` loads; EMA weights when EMA is on)
and ``last/training_state.pt`` (optimizer, scheduler, EMA, RNG states, step). Everything is written
atomically, so a killed run loses at most the steps since its last save and keeps its last good
checkpoint; a non-finite loss stops the run without saving. SIGINT and SIGTERM stop it after the current
step (training.signals); what a resume may change, and what it refuses, is in training.resume.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from jdsr_cli.errors import Interrupted, JdsrError
from jdsr_cli.training.config import TrainConfig
from jdsr_cli.training.distributed import Distributed, agreed_stop, barrier, join_process_group, mean_across_ranks
from jdsr_cli.training.resume import STATE_NAME

if TYPE_CHECKING:
    from jdsr_cli.training.data import ImagePair
    from jdsr_cli.training.dataset import PatchDataset
    from jdsr_cli.training.signals import StopSignals


class TrainingError(JdsrError):
    """The run cannot go on (non-finite loss, --init that matches nothing); the last good checkpoint is kept."""


@dataclass
class Progress:
    step: int
    steps: int
    loss: float
    lr: float
    it_per_s: float
    val_psnr: float | None


@dataclass
class _Window:
    """The losses since the last log line, when that window began, and the latest validation PSNR."""

    losses: list[float] = field(default_factory=list)
    tick: float = field(default_factory=time.perf_counter)
    val_psnr: float | None = None


@dataclass
class RunResult:
    run_dir: Path
    steps: int
    best_psnr: float | None
    losses: list[float] = field(default_factory=list)


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
        self.saved_config = self._check_resumable(config)
        self.dist = Distributed.from_env()
        self.device = resolve_device(config.device)
        if self.dist.world > 1:
            self.device = join_process_group(self.dist, self.device)
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
        self.saved_step: int | None = None  # the step last/ holds (a resumed run's, until it saves)
        self._stop: StopSignals | None = None  # while run() runs: the signals that stop it, and its shield
        self.dataset: PatchDataset | None = None  # set by prepare()
        self.val_pairs: list[ImagePair] = []

    def _initialise_from(self, spec: str) -> None:
        """Copy the tensors whose names and shapes match (e.g. the body of a ×4 model into a ×2 one)."""
        report = self.method.initialise_from(spec)
        if not report.copied:
            raise TrainingError(f"--init {spec}: no tensor matches {self.method.describe()}")
        self.init_from = report.sources
        self.log(f"initialised {report.copied}/{report.total} tensors from {spec}")

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

    @staticmethod
    def _check_resumable(config: TrainConfig) -> TrainConfig | None:
        """For a resume, the run's own config.toml, once the run folder and the options pass the checks
        that need no network (training.resume): before anything is built, printed or written."""
        from jdsr_cli.training.resume import check_checkpoints, check_unchanged, read_saved_config

        if not config.resume:
            return None
        run = Path(config.resume)
        saved = read_saved_config(run)
        check_unchanged(saved, config, run)
        check_checkpoints(run, saved)
        return saved

    def load_state(self, folder: Path) -> None:
        """Continue from ``folder/last``: weights, optimizer, scheduler, EMA, RNG and step, on any device."""
        from jdsr_cli.training.resume import check_steps, read_saved_config, read_state, state_does_not_fit

        saved = self.saved_config or read_saved_config(folder)
        state = read_state(folder, saved)
        try:
            self.model.load_state_dict(state["model"])
            if self.ema is not None and state.get("ema") is not None:
                self.ema.load_state_dict(state["ema"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            torch.set_rng_state(state["torch_rng"])
        except (RuntimeError, KeyError, ValueError, TypeError):
            raise state_does_not_fit(folder / "last" / STATE_NAME, self.method.describe(), folder, saved) from None
        self.step = self.saved_step = int(state["step"])
        check_steps(self.step, self.config, folder)
        self.best_psnr = state["best_psnr"]
        self.train_seconds = float(state.get("train_seconds", 0.0))
        self.commands = [*state.get("commands", []), *self.commands]  # earlier sessions', then this one
        if "init_from" in state:  # what the run started from, even if that checkpoint has changed since
            self.init_from = state["init_from"]

    # ---- run -----------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Everything that can refuse to start (resume state, data), before the run prints or writes anything.

        ``run`` calls it when the caller has not; the CLI calls it first so that such a failure is its only line.
        """
        from jdsr_cli.training.dataset import PatchDataset, build_data

        if self.dataset is not None:
            return
        config = self.config
        if config.resume:
            self.load_state(Path(config.resume))
        train_pairs, self.val_pairs, skipped = build_data(config)
        self.dataset = PatchDataset(train_pairs, config.scale, config.patch_size, config.seed)
        for reason in skipped if self.dist.is_main else []:
            self.log(f"skipped: {reason}")
        if config.resume and self.dist.is_main:
            self.log(f"resumed at step {self.step} from {config.resume}")

    def run(self, stop_at: int | None = None) -> RunResult:
        """Train to ``config.steps`` (or stop early after ``stop_at``, as an interruption would).

        SIGINT or SIGTERM stops the run after the current step, saving nothing more: ``Interrupted`` says
        which checkpoint is kept and how to resume (training.signals).
        """
        from jdsr_cli.io.atomic import atomic_write_text
        from jdsr_cli.training.signals import StopSignals, signal_name

        self.prepare()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.dist.is_main:
            atomic_write_text(self.run_dir / "config.toml", self.config.to_toml())
        result = RunResult(self.run_dir, self.config.steps, self.best_psnr)
        with StopSignals() as self._stop:
            try:
                self._loop(result, self._stop, stop_at)
            except Interrupted as interrupt:
                raise Interrupted(interrupt.signum, f"interrupted by {signal_name(interrupt.signum)} after step "
                                  f"{self.step}; {self.kept()}") from None
            finally:
                self._stop = None
        result.best_psnr = self.best_psnr
        barrier(self.dist)
        return result

    def kept(self) -> str:
        """What a stopped run leaves and how to go on, e.g. 'runs/x/last (step 500) is kept; go on with: ...'."""
        if self.saved_step is None:
            return (f"no checkpoint was saved yet (one every {self.config.save_every} steps), so there is nothing "
                    "to resume; start the run again")
        return (f"{self.run_dir / 'last'} (step {self.saved_step}) is kept; go on with: "
                f"jdsr train --resume {shlex.quote(str(self.run_dir))}")

    def _loop(self, result: RunResult, stop: StopSignals, stop_at: int | None) -> None:
        from jdsr_cli.training.dataset import StepSampler

        config = self.config
        sampler = StepSampler(self.step, config.steps, config.batch_size, self.dist.rank, self.dist.world)
        loader = torch.utils.data.DataLoader(
            self.dataset, batch_size=config.batch_size, sampler=sampler,
            num_workers=config.workers, pin_memory=self.device.type == "cuda",
            persistent_workers=False, drop_last=True,
        )
        window = _Window()
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
            window.losses.append(loss)
            result.losses.append(loss)
            if self.dist.is_main:
                self._validate_save_and_log(window, stop_at)
            signum = agreed_stop(self.dist, stop.signum, self.device)
            if signum:
                raise Interrupted(signum)

    def _validate_save_and_log(self, window: _Window, stop_at: int | None) -> None:
        """Rank 0's duties after a step: validation (and best/), last/, the log and the progress callback."""
        config = self.config
        if self.step % config.val_every == 0 or self.step == config.steps:
            window.val_psnr = self._validate_and_keep_best()
        if self.step % config.save_every == 0 or self.step in (config.steps, stop_at):
            self._save("last")
        if self.step % config.log_every == 0 or self.step == config.steps:
            rate = len(window.losses) / max(time.perf_counter() - window.tick, 1e-9)
            record = {"step": self.step, "loss": float(np.mean(window.losses)), "lr": self.scheduler.get_last_lr()[0],
                      "it_per_s": rate, "elapsed_s": round(self.train_seconds, 1)}
            self._append_log(record)
            if self.on_progress is not None:
                self.on_progress(Progress(self.step, config.steps, record["loss"], record["lr"], rate, window.val_psnr))
            window.losses, window.tick = [], time.perf_counter()

    def _forward(self, model: nn.Module, inputs: torch.Tensor) -> Any:
        """The net in the run's precision and memory format (the method's loss works in fp32)."""
        inputs = inputs.contiguous(memory_format=self.memory_format)
        with torch.autocast(self.device.type, dtype=self.autocast_dtype or torch.float32,
                            enabled=self.autocast_dtype is not None):
            return model(inputs)

    def _train_step(self, lr_batch: torch.Tensor, hr_batch: torch.Tensor) -> float:
        outputs = self._forward(self.train_model, self.method.batch_input(lr_batch, hr_batch))
        loss = self.method.loss(outputs, lr_batch, hr_batch)
        if not torch.isfinite(mean_across_ranks(self.dist, loss.detach())):
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
        shield = self._stop.shield() if self._stop is not None else contextlib.nullcontext()
        with shield, replace_folder(folder) as staging:  # parts and training state change as one
            for part, (module, arch_config) in self.method.exports(deployed).items():
                name = "-".join(filter(None, (self.run_dir.name, part, which)))
                write_checkpoint(staging / part if part else staging, module, arch_config, name=name,
                                 training=recipe, metrics=metrics)
            if which == "last":
                with open(staging / STATE_NAME, "wb") as handle:
                    torch.save(_to_cpu(self.state_dict()), handle)
        if which == "last":
            self.saved_step = self.step

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
