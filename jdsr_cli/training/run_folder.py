"""A training run's folder (``--out``, ``--resume``): the names of what it holds, and their reads and writes.

::

    RUN/config.toml                 the resolved options (its first line says a run wrote it)
    RUN/log.jsonl                   one record per logged step, and one per validation
    RUN/best/, RUN/last/            checkpoints ``jdsr upscale`` loads (superior-LR: encoder/ and decoder/ in each)
    RUN/last/training_state.pt      what ``--resume`` continues: networks, optimizers, schedulers, EMA, RNG, step

Runs written by every earlier version are resumed with these names, so they never change. A read that finds
the folder unusable is a ``ResumeError`` naming the file and saying how to go on (usually a new run from the
saved weights); what a resume may change is ``training.resume``'s business.
"""

from __future__ import annotations

import json
import os
import pickle
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from jdsr_cli.checkpoints.format import CONFIG_NAME, read_config_json
from jdsr_cli.checkpoints.load import load_checkpoint
from jdsr_cli.errors import JdsrError, ModelLoadError, UsageError, one_line
from jdsr_cli.io.atomic import atomic_write_text
from jdsr_cli.training.config import RUN_TOML_HEADER, TrainConfig, load_config
from jdsr_cli.training.state import LEGACY

CONFIG_TOML = "config.toml"
LOG_NAME = "log.jsonl"
BEST = "best"
LAST = "last"
STATE_NAME = "training_state.pt"
STATE_KEYS = ("step", "trainable", "optimizers", "schedulers", "torch_rng")  # or an older state's model, optimizer...


class ResumeError(JdsrError):
    """The run cannot be resumed as asked (not a run, damaged, changed options, no steps left)."""

    exit_code = 2


@dataclass(frozen=True)
class RunFolder:
    """The folder of one training run; nothing is read or written until a method asks."""

    path: Path

    @property
    def config_file(self) -> Path:
        return self.path / CONFIG_TOML

    @property
    def log_file(self) -> Path:
        return self.path / LOG_NAME

    @property
    def best(self) -> Path:
        return self.path / BEST

    @property
    def last(self) -> Path:
        return self.path / LAST

    @property
    def state_file(self) -> Path:
        return self.last / STATE_NAME

    def checkpoint(self, which: str) -> Path:
        """``best`` or ``last``."""
        return self.path / which

    # ---- options ---------------------------------------------------------------------------------------
    def read_config(self) -> TrainConfig:
        """RUN/config.toml, the options the run was started with (a missing or damaged one is a ResumeError)."""
        run, path = self.path, self.config_file
        if not run.is_dir():
            raise ResumeError(f"--resume {run}: no such run folder")
        if not path.is_file():
            raise ResumeError(f"--resume {run}: not a training run folder (no {CONFIG_TOML})")
        try:
            return load_config(path, {})
        except UsageError as error:
            reason = str(error) if str(path) in str(error) else f"{path}: {error}"
            raise ResumeError(f"{reason}; cannot resume {run} until it is repaired (the options are also recorded in "
                              f"{self.last / CONFIG_NAME} under training.config), or "
                              f"{self.new_run_hint(None)}") from None

    def write_config(self, config: TrainConfig) -> None:
        """RUN/config.toml, atomically: what ``--resume`` reads back."""
        atomic_write_text(self.config_file, config.to_toml())

    def holds_foreign_config(self) -> bool:
        """A config.toml is there that no run wrote: the user's own (``--config proj/config.toml --out proj``)."""
        path = self.config_file
        if not os.path.lexists(path):
            return False
        try:
            return path.is_symlink() or not path.read_text(encoding="utf-8").startswith(RUN_TOML_HEADER)
        except (OSError, UnicodeDecodeError):
            return True

    # ---- training state --------------------------------------------------------------------------------
    def read_state(self, saved: TrainConfig) -> dict[str, Any]:
        """RUN/last/training_state.pt as a dict (a missing, damaged or foreign one is a ResumeError)."""
        run, path = self.path, self.state_file
        if not path.is_file():
            raise ResumeError(f"{path}: missing, so {run} cannot be resumed; {self.new_run_hint(saved)}")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            raise ResumeError(f"{path}: damaged, or holds objects a safe load refuses; cannot resume {run}: "
                              f"{self.new_run_hint(saved)}") from None
        except Exception as error:  # torch's readers raise RuntimeError, EOFError, ValueError... on a cut file
            raise ResumeError(f"{path}: damaged ({one_line(error)}); cannot resume {run}: "
                              f"{self.new_run_hint(saved)}") from None
        missing = [key for key in STATE_KEYS
                   if not isinstance(state, dict) or (key not in state and LEGACY.get(key) not in state)]
        if missing:
            raise ResumeError(f"{path}: not a jdsr training state (no {missing[0]!r}); cannot resume {run}: "
                              f"{self.new_run_hint(saved)}")
        return state

    def state_does_not_fit(self, what: str, saved: TrainConfig) -> ResumeError:
        """The state loaded but does not fit the net config.toml describes (an edited or mixed-up run folder);
        torch's own message lists every tensor, so it is left out."""
        return ResumeError(f"{self.state_file}: does not fit the {what} that {self.config_file} describes (was "
                           f"{CONFIG_TOML} edited?); {self.new_run_hint(saved)}")

    def saved_step(self) -> int | None:
        """The step ``last/`` holds, from its config.json (None when it does not say)."""
        try:
            return read_config_json(self.last / CONFIG_NAME).get("training", {}).get("step")
        except (ModelLoadError, AttributeError):
            return None

    # ---- log -------------------------------------------------------------------------------------------
    def append_log(self, record: dict[str, Any]) -> None:
        """One JSON line in RUN/log.jsonl."""
        with open(self.log_file, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")

    # ---- how to go on ----------------------------------------------------------------------------------
    def resume_command(self, config: TrainConfig, data: str | None = None) -> str:
        """``jdsr distill --resume RUN`` for a distillation, else ``jdsr train --resume RUN``: the command that started
        it (with ``data``, the training folder to use instead of the saved one: ``jdsr train DATA --resume RUN``)."""
        command = "distill" if config.method == "distill" else "train"
        folder = f"{shlex.quote(data)} " if data else ""
        return f"jdsr {command} {folder}--resume {shlex.quote(str(self.path))}"

    def new_run_hint(self, saved: TrainConfig | None, flags: str = "", *, weights: bool = True) -> str:
        """How to go on without resuming: the command of a new run with RUN's options (when its config.toml
        reads) and ``flags``, starting from RUN's last, else best, loadable weights."""
        run = self.path
        options = (f"--config {shlex.quote(str(self.config_file))}" if saved is not None
                   else "DATA_DIR -s SCALE --arch ARCH")
        out = f"--out {shlex.quote(str(run))}-2"
        if not weights:
            return f"start a new run instead: jdsr train {options}{flags} {out}"
        source = next((folder for folder in (self.last, self.best) if not self.checkpoint_problem(folder)), None)
        if source is None:
            return f"no checkpoint of it loads; start a new run instead: jdsr train {options}{flags} {out}"
        return f"start a new run from its weights: jdsr train {options}{flags} --init {shlex.quote(str(source))} {out}"

    @staticmethod
    def checkpoint_problem(folder: Path) -> str | None:
        """Why the checkpoint in ``folder`` (or both halves of a superior-LR pair) does not load; None if it does."""
        parts = [folder / "encoder", folder / "decoder"] if (folder / "encoder").is_dir() else [folder]
        for part in parts:
            try:
                load_checkpoint(part)
            except JdsrError as error:
                return one_line(error, limit=400)
            except Exception as error:  # a damaged file can trip any reader
                return f"{part}: cannot be loaded ({one_line(error)})"
        return None


def save_state(staging: Path, state: dict[str, Any]) -> None:
    """The training state into a ``last/`` being staged (it becomes RUN/last/training_state.pt with the swap)."""
    with open(staging / STATE_NAME, "wb") as handle:
        torch.save(state, handle)
