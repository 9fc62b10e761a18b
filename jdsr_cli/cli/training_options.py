"""The options ``jdsr train`` and ``jdsr distill`` share, declared once (each maps to the TrainConfig field of the
same name through ``training.config.config_overrides``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

Data = Annotated[Path | None, typer.Argument(metavar="DATA_DIR", help="Folder tree of HR images.")]
Scale = Annotated[int | None, typer.Option("-s", "--scale", help="2, 3 or 4.")]
ConfigFile = Annotated[Path | None, typer.Option("--config", help="TOML file with any option below.")]
Out = Annotated[Path | None, typer.Option("--out", help="Run folder (checkpoints, log, config).")]
Resume = Annotated[Path | None, typer.Option("--resume", help="Continue the run in this folder.")]
LrDir = Annotated[Path | None, typer.Option("--lr-dir", help="Paired LR images (default: MATLAB bicubic).")]
Degradation = Annotated[str | None, typer.Option(
    "--degradation", metavar="bicubic|realistic", help="How the LR is made: MATLAB bicubic (or --lr-dir), or the "
    "realistic blur/resize/noise/JPEG chain, settings in a [degradation] table.")]
Val = Annotated[Path | None, typer.Option("--val", help="Validation HR folder (default: a split of DATA_DIR).")]
Init = Annotated[str | None, typer.Option(
    "--init", help="Start from the matching tensors of a checkpoint, an hf:// model or a bundled model "
    "(fine-tune on your photos: --init imdn-x4).")]
Steps = Annotated[int | None, typer.Option("--steps")]
BatchSize = Annotated[int | None, typer.Option("--batch-size")]
PatchSize = Annotated[int | None, typer.Option("--patch-size", help="LR patch side.")]
Lr = Annotated[float | None, typer.Option("--lr")]
Schedule = Annotated[str | None, typer.Option("--schedule", help="cosine or multistep.")]
EmaDecay = Annotated[float | None, typer.Option("--ema-decay", help="e.g. 0.999; 0 = off.")]
ValEvery = Annotated[int | None, typer.Option("--val-every")]
SaveEvery = Annotated[int | None, typer.Option("--save-every")]
Device = Annotated[str | None, typer.Option("--device")]
Precision = Annotated[str | None, typer.Option(
    "--precision", help="fp32 or bf16 (autocast; ~2x faster on CPUs with AMX/AVX512-BF16 and on GPUs, much "
    "slower on CPUs without: `jdsr doctor` says).")]
ChannelsLast = Annotated[bool | None, typer.Option("--channels-last/--no-channels-last",
                                                    help="NHWC memory format (default on).")]
Seed = Annotated[int | None, typer.Option("--seed")]
Workers = Annotated[int | None, typer.Option("--workers")]
Debug = Annotated[bool, typer.Option("--debug", envvar="JDSR_DEBUG",
                                     help="Show the traceback of an unexpected error (also JDSR_DEBUG=1).")]
