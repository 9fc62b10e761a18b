"""Training under ``torchrun``: the process group and the collectives the loop needs (where this process sits
in the job is ``process.launch``).

Every rank must take the same decisions at the same step (stop on a non-finite loss, stop on a signal),
otherwise the ranks that go on wait forever in the next all-reduce; these helpers make those decisions
collective. With one process (``world == 1``) they are no-ops.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from jdsr_cli.process.launch import Launch


def join_process_group(job: Launch, device: torch.device) -> torch.device:
    """NCCL on GPUs (one per local rank), gloo on the CPU; the same seed gives every rank the same init."""
    cuda = device.type == "cuda"
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    if cuda:
        torch.cuda.set_device(job.local_rank)
        return torch.device("cuda", job.local_rank)
    return device


def mean_across_ranks(job: Launch, value: torch.Tensor) -> torch.Tensor:
    """Every rank sees the same number, so all stop together on a non-finite loss (no hang)."""
    if job.world == 1:
        return value
    total = value.clone()
    dist.all_reduce(total)
    return total / job.world


def agreed_stop(job: Launch, signum: int | None, device: torch.device) -> int | None:
    """The stop signal any rank received, so all ranks stop after the same step."""
    if job.world == 1:
        return signum
    flag = torch.tensor([signum or 0], device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return int(flag.item()) or None


def barrier(job: Launch) -> None:
    """Wait for every rank (the end of a run, so rank 0's last save is done before any rank exits)."""
    if job.world > 1:
        dist.barrier()
