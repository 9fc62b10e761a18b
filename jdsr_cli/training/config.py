"""Training configuration: defaults < TOML file < command-line flags; the resolved result is saved.

Every option lives in one flat dataclass so a TOML file, the CLI and the saved ``config.toml`` of a run
all use the same names (``steps``, ``batch_size``, ``patch_size``...). A method's own options live in a
table named after it (``[jdsr]``), checked against the keys the method declares (``OPTIONS``). A command-line
flag is named after its option (``--batch-size`` sets ``batch_size``; ``config_overrides``), a method's flag
after its table's key (``--no-meta`` sets ``[jdsr] meta = false``; ``method_overrides``).

Run folders written by earlier versions still load: superior-lr's options were top-level keys
(``MOVED_TO_TABLE``) and some method options had other names (``FORMER_NAMES``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from jdsr_cli.errors import UsageError
from jdsr_cli.training.registry import method_class, method_names

TRAIN_PRECISIONS = ("fp32", "bf16")


DEGRADATIONS = ("bicubic", "realistic")


#: top-level keys of earlier versions that are now a method's table's (key → method)
MOVED_TO_TABLE = {key: "superior-lr" for key in ("encoder_preset", "encoder_kwargs", "lr_weight", "sr_weight",
                                                  "slr_rounding")}
#: former names of method options, still read (method → {former: current})
FORMER_NAMES = {"distill": {"loss": "kd_loss"}}

#: the first line of the config.toml a run writes (``--out`` may hold one; a user's own is never replaced)
RUN_TOML_HEADER = "# the options of a jdsr training run, written by jdsr (give it to --config to start a new run)"


@dataclass
class TrainConfig:
    data: str = ""
    scale: int = 4
    arch: str = "imdn"
    preset: str | None = None
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    method: str = "supervised"  # a registered method (training.registry); superior-lr: arch... name the decoder
    init: str | None = None  # start from this checkpoint's tensors whose names and shapes match
    lr_dir: str | None = None
    val: str | None = None  # folder of HR images; None = a built-in split of the training folder
    val_fraction: float = 0.05
    steps: int = 1000
    batch_size: int = 16
    patch_size: int = 48  # LR side
    lr: float = 2e-4
    schedule: str = "cosine"  # cosine | multistep
    milestones: list[int] = field(default_factory=list)  # multistep: steps where lr *= gamma
    gamma: float = 0.5
    min_lr_ratio: float = 0.01
    ema_decay: float = 0.0  # 0 disables EMA weights
    val_every: int = 500
    save_every: int = 500
    log_every: int = 50
    out: str = "runs/train"
    resume: str | None = None
    device: str = "auto"
    precision: str = "fp32"  # fp32 | bf16 (autocast; weights and optimizer stay fp32)
    channels_last: bool = True  # NHWC convolutions: faster on CPUs (oneDNN) and tensor cores
    seed: int = 0
    workers: int = 2
    method_options: dict[str, Any] = field(default_factory=dict)  # the [<method>] table: the method's own options
    # the [degradation] table: mode = "bicubic" (the LR files or MATLAB bicubic) or "realistic" (ops.degrade,
    # with any of its settings); --degradation sets the mode
    degradation: dict[str, Any] = field(default_factory=dict)

    @property
    def degradation_mode(self) -> str:
        return str(self.degradation.get("mode", "bicubic"))

    def degradation_settings(self) -> Any:
        """The realistic chain's settings (``ops.degrade.Degradation``), checked; None for bicubic."""
        if self.degradation_mode != "realistic":
            return None
        # local: start-up (cv2, numpy); the train and distill commands import this module before torch
        from jdsr_cli.ops.degrade import Degradation

        return Degradation.from_table({k: v for k, v in self.degradation.items() if k != "mode"})

    def validate(self) -> None:
        if not self.data:
            raise UsageError("training needs a data folder (DATA_DIR)")
        if self.scale not in (2, 3, 4):
            raise UsageError(f"--scale {self.scale}: choose 2, 3 or 4")
        if self.method not in method_names():
            raise UsageError(f"--method {self.method!r}: choose {' or '.join(method_names())}")
        _check_method_options(self.method, self.method_options)
        if self.degradation_mode not in DEGRADATIONS:
            raise UsageError(f"--degradation {self.degradation_mode!r}: choose {' or '.join(DEGRADATIONS)}")
        if self.degradation_mode == "realistic" and self.method == "superior-lr":
            raise UsageError("--degradation realistic: the superior-LR method learns its LR from bicubic; train it "
                             "with --degradation bicubic")
        if self.degradation_mode == "realistic" and self.lr_dir:
            raise UsageError("--degradation realistic makes its own LR; drop --lr-dir")
        self.degradation_settings()
        if self.schedule not in ("cosine", "multistep"):
            raise UsageError(f"--schedule {self.schedule!r}: choose cosine or multistep")
        for name in ("steps", "batch_size", "patch_size", "val_every", "save_every", "log_every"):
            if getattr(self, name) < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be at least 1")
        if self.precision not in TRAIN_PRECISIONS:
            raise UsageError(f"--precision {self.precision!r}: choose {' or '.join(TRAIN_PRECISIONS)} for training "
                             "(fp16 would need loss scaling; bf16 has fp32's range)")
        if not 0 <= self.ema_decay < 1:
            raise UsageError("--ema-decay must be in [0, 1)")
        if not self.lr > 0:
            raise UsageError(f"--lr {self.lr:g}: the learning rate must be above 0")
        for flag, folder in (("--val", self.val), ("--lr-dir", self.lr_dir)):
            if folder and not Path(folder).expanduser().is_dir():
                what = "a file, not a folder" if Path(folder).expanduser().exists() else "no such folder"
                raise UsageError(f"{flag} {folder}: {what}")
        # local: start-up (torch); the train and distill commands import this module to read their flags
        from jdsr_cli.archs import REGISTRY

        REGISTRY.get(self.arch).preset_kwargs(self.preset)  # before any data is read (the method builds it later)

    def to_toml(self) -> str:
        """The run's options as TOML; ``resume`` is an action, not an option, so it is never written (a run's
        config.toml given to ``--config`` starts a new run). The first line says a run wrote it
        (``RUN_TOML_HEADER``): a new run replaces only such a config.toml, never a user's own."""
        lines = [RUN_TOML_HEADER]
        for key, value in dataclasses.asdict(self).items():
            if value is None or key in ("resume", "method_options", "degradation"):
                continue
            lines.append(f"{key} = {_toml_value(value)}")
        for name, table in ((self.method, self.method_options), ("degradation", self.degradation)):
            if table:  # tables after the top-level keys, as users write them
                lines += ["", f"[{name}]", *(f"{k} = {_toml_value(v)}" for k, v in table.items())]
        return "\n".join(lines) + "\n"


def _check_method_options(method: str, options: dict[str, Any]) -> None:
    """Every key of the method's table must be one the method declares (its class is imported only then)."""
    if not options:
        return
    cls = method_class(method)
    known = cls.OPTIONS
    unknown = sorted(set(options) - set(known))
    if unknown:
        choices = ", ".join(sorted(known)) or "none"
        raise UsageError(f"[{method}]: unknown option(s) {', '.join(unknown)}; known: {choices}")
    cls.check_options(options)  # and their values


def _check_method_flags(method: str, flags: dict[str, Any]) -> None:
    """A method flag given to a run of another method is refused by name (it would do nothing)."""
    if method not in method_names():
        return  # validate() names the unknown method
    for key, value in flags.items():
        if key not in method_class(method).OPTIONS:
            owners = [name for name in method_names() if key in method_class(name).OPTIONS]
            owner = f"an option of --method {owners[0]}" if owners else "not an option of any method"
            raise UsageError(f"{flag_name(key, value)}: {owner}; this run's method is {method}")


def _method_tables(values: dict[str, Any], method: str, path: Path) -> dict[str, Any]:
    """Take the tables named after a method out of ``values``: the run's method's table is its options; a
    table for another method is refused (it would be silently ignored)."""
    tables = {name: values.pop(name) for name in method_names() if isinstance(values.get(name), dict)}
    other = sorted(set(tables) - {method})
    if other:
        raise UsageError(f"{path}: [{other[0]}] options, but the method is {method}; remove the table or use "
                         f"--method {other[0]}")
    return tables.get(method, {})


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def load_config(path: Path | None, overrides: dict[str, Any]) -> TrainConfig:
    """Defaults, then the TOML file, then non-None overrides (the CLI flags)."""
    values: dict[str, Any] = {}
    known = {f.name for f in dataclasses.fields(TrainConfig)} - {"method_options"}  # a table in a file
    if path is not None:
        try:
            values = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as error:
            raise UsageError(f"{path}: cannot read the config ({error})") from None
        values.pop("resume", None)  # written by earlier versions into a resumed run's config.toml
        method = overrides.get("method") or values.get("method", TrainConfig.method)
        table = {**_moved_to_table(values, method), **_method_tables(values, method, path)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise UsageError(f"{path}: unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        values["method_options"] = _current_names(method, table, f"{path}: ")
        if isinstance(values.get("degradation"), str):  # degradation = "realistic" at the top level
            values["degradation"] = {"mode": values["degradation"]}
    flags = dict(overrides)
    if isinstance(flags.get("degradation"), str):  # --degradation MODE overlays the table's mode
        flags["degradation"] = {**values.get("degradation", {}), "mode": flags["degradation"]}
    method = flags.get("method") or values.get("method", TrainConfig.method)
    method_flags = {**_moved_to_table(flags, method), **(flags.pop("method_options", None) or {})}
    method_flags = {k: v for k, v in method_flags.items() if v is not None}
    values.update({k: v for k, v in flags.items() if v is not None})
    if method_flags:  # flags such as --no-meta overlay the method's table
        method_flags = _current_names(method, method_flags, "")
        _check_method_flags(method, method_flags)
        values["method_options"] = {**values.get("method_options", {}), **method_flags}
    config = TrainConfig(**values)
    config.validate()
    return config


def _moved_to_table(values: dict[str, Any], method: str) -> dict[str, Any]:
    """Take the top-level keys that are now a method's table out of ``values`` (a file's or the overrides): the
    run's method's become its table's (a ``config.toml`` of an earlier version holds them for every method),
    another method's are dropped."""
    moved = {key: values.pop(key) for key in MOVED_TO_TABLE if key in values}
    return {key: value for key, value in moved.items() if MOVED_TO_TABLE[key] == method}


def _current_names(method: str, table: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The method's table with former option names (``FORMER_NAMES``) under their current ones."""
    renames = FORMER_NAMES.get(method, {})
    current = dict(table)
    for former, name in renames.items():
        if former in current:
            if name in current:
                raise UsageError(f"{where}[{method}] {former} and {name} are one option: keep {name}")
            current[name] = current.pop(former)
    return current


def config_overrides(**flags: Any) -> dict[str, Any]:
    """``config_overrides(scale=2, out=Path("runs/x"), lr=None)`` → ``{"scale": 2, "out": "runs/x", "lr": None}``:
    a flag not given is None and leaves the TOML file's value or the default; a path becomes a string, as the
    config and ``config.toml`` hold it.

    A name that is not a TrainConfig option is a programming error (a TypeError), not a user's.
    """
    options = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(flags) - options)
    if unknown:
        raise TypeError(f"not training options: {', '.join(unknown)}")
    return {name: str(value) if isinstance(value, Path) else value for name, value in flags.items()}


def method_overrides(**flags: Any) -> dict[str, Any]:
    """Method flags (``--no-meta`` → ``meta=False``) → ``{"method_options": {...}}`` for ``load_config``, which
    overlays them on the method's TOML table; a flag not given (None) leaves the table's value."""
    given = {name: value for name, value in flags.items() if value is not None}
    return {"method_options": given} if given else {}


def flag_name(key: str, value: Any) -> str:
    """The command-line spelling of a method option: ``meta=False`` → ``--no-meta``."""
    flag = key.replace("_", "-")
    return f"--no-{flag}" if value is False else f"--{flag}"
