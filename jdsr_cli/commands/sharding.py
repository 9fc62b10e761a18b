"""Under ``torchrun`` each rank takes every world-th planned file and, on a multi-GPU machine, its own GPU.

The batch is planned over all inputs before it is split, so collisions between files of different
ranks are caught the same way as within one process.
"""

from __future__ import annotations

from pathlib import Path

from jdsr_cli.commands.batch import OutputNaming, PlannedFile, plan_batch
from jdsr_cli.commands.inputs import InputFile, shard_for_rank
from jdsr_cli.process.launch import Launch


def plan_for_this_rank(items: list[InputFile], naming: OutputNaming, *, overwrite: bool = False) -> list[PlannedFile]:
    """Plan every input of the batch (so collisions across ranks are caught too), keep this rank's share."""
    launch = Launch.from_env()
    return shard_for_rank(plan_batch(items, naming, overwrite=overwrite), launch.rank, launch.world)


def rank_device(device: str) -> str:
    """``auto`` under a multi-process launch on a multi-GPU machine: this rank's own GPU."""
    launch = Launch.from_env()
    if launch.world > 1 and device == "auto":
        import torch  # local: the CLI's batch report path needs this module, not torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count > 1:
            return f"cuda:{launch.local_rank % count}"
    return device


def rank_report_path(path: Path) -> Path:
    """One report per rank: report.json -> report.rank0.json, report.rank1.json, ..."""
    launch = Launch.from_env()
    return path.with_name(f"{path.stem}.rank{launch.rank}{path.suffix}") if launch.world > 1 else path
