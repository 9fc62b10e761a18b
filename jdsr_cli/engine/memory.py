"""How much host memory this process can still allocate, to refuse work that cannot fit before doing it.

The answer is the smallest of: the kernel's ``MemAvailable`` (free plus reclaimable cache), the
headroom under ``RLIMIT_AS`` (``ulimit -v``) and the headroom under a cgroup v2 ``memory.max``. Any
source that cannot be read is left out; None when none can be.
"""

from __future__ import annotations

import resource
from pathlib import Path


def available_host_memory() -> int | None:
    """Bytes this process can still allocate, or None when nothing can be read."""
    candidates = [value for value in (_mem_available(), _address_space_headroom(), _cgroup_headroom()) if value]
    return min(candidates) if candidates else None


def _read_kib_field(path: str, field: str) -> int | None:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _mem_available() -> int | None:
    return _read_kib_field("/proc/meminfo", "MemAvailable")


def _address_space_headroom() -> int | None:
    soft, _hard = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    used = _read_kib_field("/proc/self/status", "VmSize")
    return max(0, soft - used) if used is not None else soft


def _cgroup_headroom() -> int | None:
    root = Path("/sys/fs/cgroup")
    try:
        limit = (root / "memory.max").read_text().strip()
        if limit == "max":
            return None
        return max(0, int(limit) - int((root / "memory.current").read_text().strip()))
    except (OSError, ValueError):
        return None


def format_bytes(count: float) -> str:
    """``1.5 GiB``-style, for messages."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GiB"
