"""Supervised training runs: the loop every training method builds on.

The method (training.method_api) owns its networks, optimizers and step; the Trainer owns the rest.
The run folder (training.run_folder) holds the options, the log, ``last/`` and ``best/`` (checkpoints of the
deployed network, EMA weights when EMA is on; the log has the window mean of each named loss) and the training
state in ``last/`` (trainable networks, optimizers, schedulers, EMA, RNG states, step). Everything is written
atomically, so a killed run loses at most the steps since its last save and keeps its last good
checkpoint; a non-finite loss stops the run without saving. SIGINT and SIGTERM stop it after the current
step (process.signals); what a resume may change, and what it refuses, is in training.resume.
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from jdsr_cli.checkpoints.save import write_checkpoint
from jdsr_cli.checkpoints.swap import replace_folder
from jdsr_cli.engine.device import resolve_device, slow_bf16_warning
from jdsr_cli.errors import Interrupted
from jdsr_cli.ops.metrics import MetricConvention
from jdsr_cli.process.launch import Launch
from jdsr_cli.process.signals import StopSignals, ignore_stop_signals, signal_name
from jdsr_cli.training import methods
from jdsr_cli.training.config import TrainConfig
from jdsr_cli.training.dataset import PatchDataset, StepSampler, build_data, realistic_pairs
from jdsr_cli.training.distributed import agreed_stop, barrier, join_process_group
from jdsr_cli.training.ema import ema_copy, ema_decay_at, update_ema
from jdsr_cli.training.method_api import Batch
from jdsr_cli.training.recipe import command_line, training_recipe
from jdsr_cli.training.resume import check_checkpoints, check_new_run_folder, check_steps, check_unchanged
from jdsr_cli.training.run_folder import BEST, LAST, RunFolder, save_state
from jdsr_cli.training.state import load_method_state, method_state, to_cpu
from jdsr_cli.training.step_context import StepContext, TrainingError

__all__ = ["Progress", "RunResult", "Trainer", "TrainingError", "ema_decay_at"]

if TYPE_CHECKING:
    from jdsr_cli.training.data import ImagePair


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
    """The named losses since the last log line, when that window began, and the latest validation PSNR."""

    losses: dict[str, list[float]] = field(default_factory=dict)
    steps: int = 0
    tick: float = field(default_factory=time.perf_counter)
    val_psnr: float | None = None

    def add(self, losses: dict[str, float]) -> None:
        self.steps += 1
        for name, value in losses.items():
            self.losses.setdefault(name, []).append(value)

    def means(self) -> dict[str, float]:
        return {name: float(np.mean(values)) for name, values in self.losses.items()}


@dataclass
class RunResult:
    run_dir: Path
    steps: int
    best_psnr: float | None
    losses: list[float] = field(default_factory=list)


class Trainer:
    """One training run of any method (``jdsr_cli.training.methods``), from step 0 or ``config.resume``."""

    def __init__(self, config: TrainConfig, *, on_progress: Callable[[Progress], None] | None = None,
                 log: Callable[[str], None] = print) -> None:
        self.config = config
        self.on_progress = on_progress
        self.log = log
        self.saved_config = self._check_resumable(config)
        self.dist = Launch.from_env()
        self.device = resolve_device(config.device)
        warning = slow_bf16_warning(self.device, config.precision)
        if warning is not None:
            log(f"warning: {warning}")
        if self.dist.world > 1:
            self.device = join_process_group(self.dist, self.device)
        torch.manual_seed(config.seed)
        self.method = methods.build_method(config)
        self.init_from: list[dict[str, Any]] = []  # the --init checkpoints' own recipes (kept across resumes)
        self.model: nn.Module = self.method.deployed()  # the supervised network itself, or e.g. encoder + decoder
        if config.init and not config.resume:  # a resumed run's weights and lineage come from its state
            self._initialise_from(config.init)
        self.memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
        self._place_networks()
        self.autocast_dtype = torch.bfloat16 if config.precision == "bf16" else None
        wrapped = self._wrap_trainable()
        self.ema = ema_copy(self.model) if config.ema_decay > 0 else None
        self.run_dir = Path(config.out)
        self.folder = RunFolder(self.run_dir)
        self.ctx = StepContext(device=self.device, memory_format=self.memory_format, autocast_dtype=self.autocast_dtype,
                               dist=self.dist, run_dir=self.run_dir, optimizers=self.method.optimizers(),
                               schedulers=self.method.schedulers(), wrapped=wrapped)
        self.step = 0
        self.train_seconds = 0.0  # wall-clock of the training loop, summed over resumed sessions
        self.commands = [command_line()]  # the command that started the run, then each resume's
        self.best_psnr: float | None = None
        self.saved_step: int | None = None  # the step last/ holds (a resumed run's, until it saves)
        self._stop: StopSignals | None = None  # while run() runs: the signals that stop it, and its shield
        self.dataset: PatchDataset | None = None  # set by prepare()
        self.val_pairs: list[ImagePair] = []

    def _place_networks(self) -> None:
        """Every network on the run's device and memory format; frozen ones in eval mode, without gradients."""
        frozen = self.method.frozen()
        for module in frozen.values():
            module.requires_grad_(False).eval()
        for module in (*self.method.trainable().values(), *frozen.values()):
            module.to(self.device, memory_format=self.memory_format)
        frozen_params = {id(p) for module in frozen.values() for p in module.parameters()}
        for name, optimizer in self.method.optimizers().items():
            if any(id(p) in frozen_params for group in optimizer.param_groups for p in group["params"]):
                raise TypeError(f"{self.method.describe()}: optimizer {name!r} holds a frozen network's parameters")

    def _wrap_trainable(self) -> dict[int, nn.Module]:
        """DDP around each trainable network under torchrun (frozen ones need no gradient sync): by id, for ctx."""
        if self.dist.world == 1:
            return {}
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return {id(module): nn.parallel.DistributedDataParallel(module, device_ids=device_ids)
                for module in self.method.trainable().values()}

    def _initialise_from(self, spec: str) -> None:
        """Copy the tensors whose names and shapes match (e.g. the body of a ×4 model into a ×2 one)."""
        report = self.method.initialise_from(spec)
        if not report.copied:
            raise TrainingError(f"--init {spec}: no tensor matches {self.method.describe()}")
        self.init_from = report.sources
        self.log(f"initialised {report.copied}/{report.total} tensors from {spec}")

    # ---- state ---------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """What last/training_state.pt holds: trainable networks, optimizers and schedulers (training.state)
        and EMA, never a frozen network."""
        return {
            "step": self.step,
            **method_state(self.method),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "torch_rng": torch.get_rng_state(),
            "best_psnr": self.best_psnr,
            "train_seconds": self.train_seconds,
            "commands": self.commands,
            "init_from": self.init_from,
        }

    @staticmethod
    def _check_resumable(config: TrainConfig) -> TrainConfig | None:
        """For a resume, the run's own config.toml, once the run folder and the options pass the checks
        that need no network (training.resume): before anything is built, printed or written. A new run only
        checks that its folder holds no other run."""
        if not config.resume:
            check_new_run_folder(Path(config.out))
            return None
        run = Path(config.resume)
        saved = RunFolder(run).read_config()
        check_unchanged(saved, config, run)
        check_checkpoints(run, saved)
        return saved

    def load_state(self, folder: Path) -> None:
        """Continue from ``folder/last``: weights, optimizer, scheduler, EMA, RNG and step, on any device."""
        run = RunFolder(folder)
        saved = self.saved_config or run.read_config()
        state = run.read_state(saved)
        try:
            load_method_state(self.method, state)
            if self.ema is not None and state.get("ema") is not None:
                self.ema.load_state_dict(state["ema"])
            torch.set_rng_state(state["torch_rng"])
        except (RuntimeError, KeyError, ValueError, TypeError):
            raise run.state_does_not_fit(self.method.describe(), saved) from None
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
        if self.dataset is not None:
            return
        config = self.config
        if config.resume:
            self.load_state(Path(config.resume))
        train_pairs, self.val_pairs, skipped = build_data(config)
        train_pairs = self.method.training_pairs(train_pairs)
        degradation = config.degradation_settings()
        self.dataset = PatchDataset(train_pairs, config.scale, config.patch_size, config.seed, degradation)
        if degradation is not None:
            self.val_pairs = realistic_pairs(self.val_pairs, config.scale, config.seed, degradation)
        for reason in skipped if self.dist.is_main else []:
            self.log(f"skipped: {reason}")
        if config.resume and self.dist.is_main:
            self.log(f"resumed at step {self.step} from {config.resume}")

    def run(self, stop_at: int | None = None) -> RunResult:
        """Train to ``config.steps`` (or stop early after ``stop_at``, as an interruption would).

        SIGINT or SIGTERM stops the run after the current step, saving nothing more: ``Interrupted`` says
        which checkpoint is kept and how to resume (process.signals).
        """
        self.prepare()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.dist.is_main:
            self.folder.write_config(self.config)
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
        resume = self.folder.resume_command(self.config)
        return f"{self.folder.last} (step {self.saved_step}) is kept; go on with: {resume}"

    def _loop(self, result: RunResult, stop: StopSignals, stop_at: int | None) -> None:
        config = self.config
        sampler = StepSampler(self.step, config.steps, config.batch_size, self.dist.rank, self.dist.world)
        loader = torch.utils.data.DataLoader(
            self.dataset, batch_size=config.batch_size, sampler=sampler,
            num_workers=config.workers, pin_memory=self.device.type == "cuda",
            persistent_workers=False, drop_last=True, worker_init_fn=ignore_stop_signals,
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
            losses = self._train_step(lr_batch.to(self.device, non_blocking=True),
                                      hr_batch.to(self.device, non_blocking=True))
            self.step += 1
            window.add(losses)
            result.losses.append(_total(losses))
            if self.dist.is_main:
                self._validate_save_and_log(window, stop_at)
            signum = agreed_stop(self.dist, stop.signum, self.device)
            if signum:
                if self.dist.is_main and self.saved_step != self.step:
                    self._save(LAST)  # the finished step is consistent: a stop keeps what was trained
                barrier(self.dist)  # the other ranks wait for that save before they exit
                raise Interrupted(signum)

    def _validate_save_and_log(self, window: _Window, stop_at: int | None) -> None:
        """Rank 0's duties after a step: validation (and best/), last/, the log and the progress callback."""
        config = self.config
        if self.step % config.val_every == 0 or self.step == config.steps:
            window.val_psnr = self._validate_and_keep_best()
        if self.step % config.save_every == 0 or self.step in (config.steps, stop_at):
            self._save(LAST)
        if self.step % config.log_every == 0 or self.step == config.steps:
            rate = window.steps / max(time.perf_counter() - window.tick, 1e-9)
            means = window.means()
            loss = _total(means)
            record = {"step": self.step, "loss": loss, **means, **self._learning_rates(), "it_per_s": rate,
                      "elapsed_s": round(self.train_seconds, 1)}
            self.folder.append_log(record)
            if self.on_progress is not None:
                self.on_progress(Progress(self.step, config.steps, loss, record["lr"], rate, window.val_psnr))
            window.losses, window.steps, window.tick = {}, 0, time.perf_counter()

    def _learning_rates(self) -> dict[str, float]:
        """"lr": the first optimizer's; "lr_<name>" for each further one (as its scheduler left it)."""
        rates = [(name, opt.param_groups[0]["lr"]) for name, opt in self.method.optimizers().items()]
        return {("lr" if i == 0 else f"lr_{name}"): rate for i, (name, rate) in enumerate(rates)}

    def _train_step(self, lr_batch: torch.Tensor, hr_batch: torch.Tensor) -> dict[str, float]:
        """The method's step, then the EMA of the deployed network; the named losses as floats."""
        self.ctx.step = self.step
        losses = self.method.train_step(Batch(lr_batch, hr_batch), self.step, self.ctx)
        if self.ema is not None:
            update_ema(self.ema, self.model, self.config.ema_decay, self.step)
        return {name: float(value.item() if isinstance(value, torch.Tensor) else value) for name, value in losses.items()}

    # ---- validation and checkpoints ------------------------------------------------------------
    def deployed_model(self) -> nn.Module:
        return self.ema if self.ema is not None else self.model

    @property
    def val_label(self) -> str:
        """What the validation PSNR measures: to the HR, or (a distillation without the HR term) to the teacher."""
        label = MetricConvention.standard(self.config.scale).psnr_label
        target = self.method.validation_target
        return label if target == "HR" else f"{label} to the {target}"

    def _validate_and_keep_best(self) -> float:
        net = self.deployed_model()
        net.eval()
        scores = self.method.validate(net, self.val_pairs, self.device)
        self.model.train()
        self.folder.append_log({"step": self.step, "val_psnr": scores.psnr, "val_ssim": scores.ssim, **scores.extra,
                          "convention": self.val_label})
        if self.best_psnr is None or scores.psnr > self.best_psnr:
            self.best_psnr = scores.psnr
            self._save(BEST, metrics={"val": {"psnr": scores.psnr, "ssim": scores.ssim, "images": scores.images,
                                                **scores.extra}})
        return scores.psnr

    def _save(self, which: str, metrics: dict[str, Any] | None = None) -> None:
        folder = self.folder.checkpoint(which)
        recipe = training_recipe(self.config, step=self.step, train_seconds=self.train_seconds, device=self.device,
                                 commands=self.commands, init_from=self.init_from,
                                 extra=self.method.recipe_extra())
        deployed = copy.deepcopy(self.deployed_model()).cpu()
        shield = self._stop.shield() if self._stop is not None else contextlib.nullcontext()
        with shield:  # a second signal waits for the swap and for saved_step (kept() reports it)
            with replace_folder(folder) as staging:  # parts and training state change as one
                for part, (module, arch_config) in self.method.exports(deployed).items():
                    name = "-".join(filter(None, (self.run_dir.name, part, which)))
                    write_checkpoint(staging / part if part else staging, module, arch_config, name=name,
                                     training=recipe, metrics=metrics)
                if which == LAST:
                    save_state(staging, to_cpu(self.state_dict()))
            if which == LAST:
                self.saved_step = self.step


def _total(losses: dict[str, float]) -> float:
    """The loss progress shows: "loss", else the first named one."""
    return losses["loss"] if "loss" in losses else next(iter(losses.values()), float("nan"))
