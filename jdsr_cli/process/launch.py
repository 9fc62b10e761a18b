"""Where this process sits in a ``torchrun`` launch: the one reader of ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``.

Batch commands split their files and GPUs by it, training joins a process group by it, and only the main
process (rank 0) speaks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Launch:
    """This process's rank among ``world`` processes, and its rank on this machine (0 of 1 when run directly)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> Launch:
        """Read from the variables ``torchrun`` sets; a process started directly is rank 0 of 1."""
        return cls(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                   int(os.environ.get("LOCAL_RANK", 0)))

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that saves, logs and prints."""
        return self.rank == 0
