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

import contextlib
import os
import pickle
import shlex
from pathlib import Path
from typing import Any

from jdsr_cli.errors import JdsrError, UsageError, one_line
from jdsr_cli.training.config import TrainConfig, load_config

STATE_NAME = "training_state.pt"
STATE_KEYS = ("step", "trainable", "optimizers", "schedulers", "torch_rng")  # or an older state's model, optimizer...
FIXED_ON_RESUME = ("method", "scale", "arch", "preset", "arch_kwargs", "lr")  # and the method's own
_FLAGS = {"method": "--method", "scale": "--scale", "arch": "--arch", "preset": "--preset", "lr": "--lr",
          "ema_decay": "--ema-decay"}


class ResumeError(JdsrError):
    """The run cannot be resumed as asked (not a run, damaged, changed options, no steps left)."""

    exit_code = 2


def load_resume_config(run: Path, config_file: Path | None, overrides: dict[str, Any]) -> TrainConfig:
    """The CLI's options for ``--resume RUN``: RUN/config.toml (or ``--config``), then the flags."""
    read_saved_config(run)
    return load_config(config_file or run / "config.toml", {**overrides, "resume": str(run), "out": str(run)})


def read_saved_config(run: Path) -> TrainConfig:
    """RUN/config.toml, the options the run was started with (a missing or damaged one is a ResumeError)."""
    if not run.is_dir():
        raise ResumeError(f"--resume {run}: no such run folder")
    path = run / "config.toml"
    if not path.is_file():
        raise ResumeError(f"--resume {run}: not a training run folder (no config.toml)")
    try:
        return load_config(path, {})
    except UsageError as error:
        reason = str(error) if str(path) in str(error) else f"{path}: {error}"
        raise ResumeError(f"{reason}; cannot resume {run} until it is repaired (the options are also recorded in "
                          f"{run / 'last' / 'config.json'} under training.config), or "
                          f"{new_run_hint(run, None)}") from None


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
        hint = new_run_hint(run, saved, wanted, weights=name != "arch")
        raise ResumeError(f"{flag or name} {_show(now)}: {run} was trained with {name} {_show(before)}, and {name} "
                          f"cannot change on resume; {hint}")


def _changed_method_options(saved: TrainConfig, config: TrainConfig) -> list[tuple[str, Any, Any]]:
    """The keys of the method's table that shape its saved networks and optimizers (``FIXED_ON_RESUME``)."""
    from jdsr_cli.training.registry import method_class

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
    problem = _load_problem(run / "last")
    if problem:
        raise ResumeError(f"{problem}; cannot resume {run}: {new_run_hint(run, saved)}")


def read_state(run: Path, saved: TrainConfig) -> dict[str, Any]:
    """RUN/last/training_state.pt as a dict (a missing, damaged or foreign one is a ResumeError)."""
    import torch

    path = run / "last" / STATE_NAME
    if not path.is_file():
        raise ResumeError(f"{path}: missing, so {run} cannot be resumed; {new_run_hint(run, saved)}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise ResumeError(f"{path}: damaged, or holds objects a safe load refuses; cannot resume {run}: "
                          f"{new_run_hint(run, saved)}") from None
    except Exception as error:  # torch's readers raise RuntimeError, EOFError, ValueError... on a cut file
        raise ResumeError(f"{path}: damaged ({one_line(error)}); cannot resume {run}: "
                          f"{new_run_hint(run, saved)}") from None
    from jdsr_cli.training.state import LEGACY

    missing = [key for key in STATE_KEYS
               if not isinstance(state, dict) or (key not in state and LEGACY.get(key) not in state)]
    if missing:
        raise ResumeError(f"{path}: not a jdsr training state (no {missing[0]!r}); cannot resume {run}: "
                          f"{new_run_hint(run, saved)}")
    return state


def state_does_not_fit(path: Path, what: str, run: Path, saved: TrainConfig) -> ResumeError:
    """The state loaded but does not fit the net config.toml describes (an edited or mixed-up run folder);
    torch's own message lists every tensor, so it is left out."""
    return ResumeError(f"{path}: does not fit the {what} that {run / 'config.toml'} describes (was config.toml "
                       f"edited?); {new_run_hint(run, saved)}")


def resume_command(config: TrainConfig, run: Path, data: str | None = None) -> str:
    """``jdsr distill --resume RUN`` for a distillation, else ``jdsr train --resume RUN``: the command that started it
    (with ``data``, the training folder to use instead of the saved one: ``jdsr train DATA --resume RUN``)."""
    command = "distill" if config.method == "distill" else "train"
    folder = f"{shlex.quote(data)} " if data else ""
    return f"jdsr {command} {folder}--resume {shlex.quote(str(run))}"


def check_steps(step: int, config: TrainConfig, run: Path) -> None:
    """A resume that would train nothing is refused (instead of saying 'done' and rewriting config.toml)."""
    if step >= config.steps:
        raise ResumeError(f"{run} is already at step {step} and --steps {config.steps} leaves nothing to train; "
                          f"give more steps to go on, e.g. {resume_command(config, run)} --steps {2 * step}")


def check_new_run_folder(out: Path) -> None:
    """A new run never writes into a folder that holds another run's checkpoints: its best/ and last/ would be
    replaced. (A run stopped before its first save left none; starting it again is what its message says.)
    The folder must also be one that can be made and written (not a file, nor under one)."""
    from jdsr_cli.commands.destinations import check_output_folder

    check_output_folder(out, "--out")
    _check_config_toml(out / "config.toml", out)
    from jdsr_cli.checkpoints.swap import recover_missing

    for which in ("best", "last"):  # a save killed between its two renames is finished first
        if not (out / which).exists():
            recover_missing(out / which)
    if not any((out / which).exists() for which in ("best", "last")):
        return
    from jdsr_cli.checkpoints.format import CONFIG_NAME, read_config_json
    from jdsr_cli.errors import ModelLoadError

    step = None
    with contextlib.suppress(ModelLoadError, AttributeError):  # the step only decorates the message
        step = read_config_json(out / "last" / CONFIG_NAME).get("training", {}).get("step")
    held = f" (last/ at step {step})" if step is not None else ""
    raise UsageError(f"--out {out} already holds a training run{held}; continue it with "
                     f"jdsr train --resume {shlex.quote(str(out))}, or choose another --out (nothing was written)")


def _check_config_toml(path: Path, out: Path) -> None:
    """A run writes its options to ``--out``/config.toml: one there that no run wrote is the user's (``--config
    proj/config.toml --out proj``) and is not replaced."""
    from jdsr_cli.training.config import RUN_TOML_HEADER

    if not os.path.lexists(path):
        return
    try:
        ours = not path.is_symlink() and path.read_text(encoding="utf-8").startswith(RUN_TOML_HEADER)
    except (OSError, UnicodeDecodeError):
        ours = False
    if not ours:
        raise UsageError(f"--out {out}: holds a config.toml that no jdsr run wrote (a run writes its options "
                         f"there); choose another --out, e.g. {shlex.quote(str(out / 'run'))} (nothing was written)")


def new_run_hint(run: Path, saved: TrainConfig | None, flags: str = "", *, weights: bool = True) -> str:
    """How to go on without resuming: the command of a new run with RUN's options (when its config.toml
    reads) and ``flags``, starting from RUN's last, else best, loadable weights."""
    options = f"--config {shlex.quote(str(run / 'config.toml'))}" if saved is not None else "DATA_DIR -s SCALE --arch ARCH"
    out = f"--out {shlex.quote(str(run))}-2"
    if not weights:
        return f"start a new run instead: jdsr train {options}{flags} {out}"
    source = next((run / which for which in ("last", "best") if not _load_problem(run / which)), None)
    if source is None:
        return f"no checkpoint of it loads; start a new run instead: jdsr train {options}{flags} {out}"
    return f"start a new run from its weights: jdsr train {options}{flags} --init {shlex.quote(str(source))} {out}"


def _load_problem(folder: Path) -> str | None:
    """Why the checkpoint in ``folder`` (or both halves of a superior-LR pair) does not load; None if it does."""
    from jdsr_cli.checkpoints.format import load_checkpoint

    parts = [folder / "encoder", folder / "decoder"] if (folder / "encoder").is_dir() else [folder]
    for part in parts:
        try:
            load_checkpoint(part)
        except JdsrError as error:
            return one_line(error, limit=400)
        except Exception as error:  # a damaged file can trip any reader
            return f"{part}: cannot be loaded ({one_line(error)})"
    return None


def _show(value: Any) -> str:
    return "none" if value is None else str(value)
