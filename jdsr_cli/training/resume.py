"""``--resume RUN``: what may change when a run goes on, and the checks that refuse one that cannot.

A resumed run continues the saved weights, optimizer and schedule, so the options that shape them are
fixed: the method, the scale, the architecture and its size (preset, kwargs, encoder), EMA on or off, and
the learning rate (the optimizer state keeps the run's, so a new ``--lr`` would silently do nothing).
Everything else may change: more steps, a moved data folder, device, precision, memory format, workers,
validation and save cadence, schedule, batch size, patch size and seed (the last three continue the run,
but no longer draw the batches the uninterrupted run would have drawn).

Every refusal happens before the run prints or writes anything, is a ``ResumeError`` (exit 2), names the
file or option in one line, and says how to go on: usually a new run that starts from the saved weights.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from jdsr_cli.checkpoints.swap import recover_missing
from jdsr_cli.errors import UsageError
from jdsr_cli.io.destinations import check_output_folder
from jdsr_cli.training.config import TrainConfig, load_config
from jdsr_cli.training.registry import method_class
from jdsr_cli.training.run_folder import BEST, LAST, ResumeError, RunFolder

FIXED_ON_RESUME = ("method", "scale", "arch", "preset", "arch_kwargs", "lr")  # and the method's own
_FLAGS = {"method": "--method", "scale": "--scale", "arch": "--arch", "preset": "--preset", "lr": "--lr",
          "ema_decay": "--ema-decay"}


def load_resume_config(run: Path, config_file: Path | None, overrides: dict[str, Any]) -> TrainConfig:
    """The CLI's options for ``--resume RUN``: RUN/config.toml (or ``--config``), then the flags."""
    folder = RunFolder(run)
    folder.read_config()
    return load_config(config_file or folder.config_file, {**overrides, "resume": str(run), "out": str(run)})


def check_unchanged(saved: TrainConfig, config: TrainConfig, run: Path) -> None:
    """Refuse an option that would change what the saved weights and optimizer state mean."""
    changed = [(name, getattr(saved, name), getattr(config, name)) for name in FIXED_ON_RESUME
               if getattr(saved, name) != getattr(config, name)]
    if (saved.ema_decay > 0) != (config.ema_decay > 0):
        changed.append(("ema_decay", saved.ema_decay, config.ema_decay))
    changed += _changed_method_options(saved, config)
    if changed:
        name, before, now = changed[0]
        flag = _FLAGS.get(name)
        wanted = f" {flag} {shlex.quote(_show(now))}" if flag and now is not None else ""
        # another architecture shares no tensor with the run's, so it starts from scratch
        hint = RunFolder(run).new_run_hint(saved, wanted, weights=name != "arch")
        raise ResumeError(f"{flag or name} {_show(now)}: {run} was trained with {name} {_show(before)}, and {name} "
                          f"cannot change on resume; {hint}")


def _changed_method_options(saved: TrainConfig, config: TrainConfig) -> list[tuple[str, Any, Any]]:
    """The keys of the method's table that shape its saved networks and optimizers (``FIXED_ON_RESUME``)."""
    if saved.method != config.method:
        return []
    cls = method_class(saved.method)
    defaults = cls.OPTIONS
    def value(options: dict[str, Any], key: str) -> Any:
        found = options.get(key, defaults[key])
        return str(found).lower() if isinstance(found, bool) else found  # as the TOML table writes it

    return [(f"[{saved.method}] {key}", value(saved.method_options, key), value(config.method_options, key))
            for key in cls.FIXED_ON_RESUME
            if value(saved.method_options, key) != value(config.method_options, key)]


def check_checkpoints(run: Path, saved: TrainConfig) -> None:
    """RUN/last must load as ``jdsr upscale`` would load it (a damaged one means a damaged run folder)."""
    folder = RunFolder(run)
    problem = folder.checkpoint_problem(folder.last)
    if problem:
        raise ResumeError(f"{problem}; cannot resume {run}: {folder.new_run_hint(saved)}")


def check_steps(step: int, config: TrainConfig, run: Path) -> None:
    """A resume that would train nothing is refused (instead of saying 'done' and rewriting config.toml)."""
    if step >= config.steps:
        raise ResumeError(f"{run} is already at step {step} and --steps {config.steps} leaves nothing to train; "
                          f"give more steps to go on, e.g. {RunFolder(run).resume_command(config)} --steps {2 * step}")


def check_new_run_folder(out: Path) -> None:
    """A new run never writes into a folder that holds another run's checkpoints: its best/ and last/ would be
    replaced. (A run stopped before its first save left none; starting it again is what its message says.)
    The folder must also be one that can be made and written (not a file, nor under one), and a config.toml
    there that no run wrote is the user's (``--config proj/config.toml --out proj``): it is not replaced."""
    check_output_folder(out, "--out")
    folder = RunFolder(out)
    if folder.holds_foreign_config():
        raise UsageError(f"--out {out}: holds a config.toml that no jdsr run wrote (a run writes its options "
                         f"there); choose another --out, e.g. {shlex.quote(str(out / 'run'))} (nothing was written)")
    checkpoints = [folder.checkpoint(which) for which in (BEST, LAST)]
    for checkpoint in checkpoints:  # a save killed between its two renames is finished first
        if not checkpoint.exists():
            recover_missing(checkpoint)
    if not any(checkpoint.exists() for checkpoint in checkpoints):
        return
    step = folder.saved_step()  # it only decorates the message
    held = f" (last/ at step {step})" if step is not None else ""
    raise UsageError(f"--out {out} already holds a training run{held}; continue it with "
                     f"jdsr train --resume {shlex.quote(str(out))}, or choose another --out (nothing was written)")


def _show(value: Any) -> str:
    return "none" if value is None else str(value)
