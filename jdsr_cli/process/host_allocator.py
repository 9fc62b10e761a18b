"""Keep freed host memory for reuse: on a CPU, touching fresh pages is a large part of an upscale.

Every forward pass allocates its feature maps anew (9 MiB each for 64 channels at 192², 64 MiB at
512²). glibc hands large freed blocks back to the kernel (``munmap``, heap trimming), so the next pass
takes a page fault for every 4 KiB it touches first: ~33K faults per ``imdn-x4`` forward at 192² on the
development VM, at ~3 µs each. Two process-wide settings remove them:

- glibc keeps freed blocks of up to 32 MiB (its maximum ``M_MMAP_THRESHOLD``) in its heap and leaves up
  to ``TRIM_THRESHOLD`` of free memory at the heap's top instead of returning it;
- PyTorch backs tensors of 2 MiB and more with transparent huge pages (``THP_MEM_ALLOC_ENABLE``, read at
  its first large allocation), one fault per 2 MiB for the blocks glibc still maps one by one.

Both change the whole process, so the library never applies them on its own: the ``jdsr`` command does,
as the owner of its process, and a Python caller may call :func:`tune_host_allocator` the same way.
``JDSR_SYSTEM_ALLOCATOR=1`` leaves the allocator as it is. The memory stays with the process until it
exits; its peak is the working set's, as before.
"""

from __future__ import annotations

import ctypes
import os
import sys
from dataclasses import dataclass

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's upper limit on 64-bit systems
TRIM_THRESHOLD = 512 * 1024 * 1024
OPT_OUT_VARIABLE = "JDSR_SYSTEM_ALLOCATOR"
THP_VARIABLE = "THP_MEM_ALLOC_ENABLE"


@dataclass(frozen=True)
class AllocatorTuning:
    """What :func:`tune_host_allocator` changed, for ``jdsr doctor`` and the benchmarks."""

    glibc_keeps_freed_memory: bool
    torch_huge_pages: bool
    reason: str = ""


def tune_host_allocator() -> AllocatorTuning:
    """Apply both settings where they exist (Linux with glibc); idempotent; never raises."""
    if os.environ.get(OPT_OUT_VARIABLE, "").strip() not in ("", "0"):
        return AllocatorTuning(False, False, f"{OPT_OUT_VARIABLE} is set")
    if not sys.platform.startswith("linux"):
        return AllocatorTuning(False, False, "not Linux")
    os.environ.setdefault(THP_VARIABLE, "1")
    huge_pages = os.environ[THP_VARIABLE] == "1"
    return AllocatorTuning(_tune_glibc(), huge_pages, "")


def _tune_glibc() -> bool:
    # the running process's own symbols (Python links the C library): no library search, which would spawn
    # ldconfig and cost every command ~25 ms at start-up
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is None:  # musl and other C libraries have no mallopt
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    # the mmap threshold first: setting the trim threshold also freezes glibc's dynamic mmap threshold
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
