"""Share the CPU with other busy processes: run on the cores they leave idle.

PyTorch's CPU kernels run on an OpenMP team of one thread per core, and the team's threads spin at every
barrier (libgomp's default wait policy). When another process keeps a core busy, the team thread on that
core waits for its time slice while the others spin: on the 2-core development VM an ``imdn-x4`` upscale
of a 256² image took 3–4× its time beside one busy core, and two ``jdsr upscale`` runs side by side
each took 8–9× theirs. With one thread per core the other processes leave idle there is no one to wait for.

:class:`CpuShare` counts, between two looks, the CPU time all processes used (``/proc/stat``; behind
``taskset`` or a cpuset only on the CPUs this process may use) less this process's own
(``/proc/self/stat``), and sets torch's thread count to the cores left (at least 1, at most the count it
started with). The image commands look before each file and after each tile batch, ``jdsr eval`` after
each image. It changes the whole process, so the library never applies it on its own: the ``jdsr``
command does.
``JDSR_CPU_SHARE=0``, an ``OMP_NUM_THREADS`` in the environment, or a system without ``/proc`` (macOS,
Windows) leave the thread count alone.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass

OPT_OUT_VARIABLE = "JDSR_CPU_SHARE"
#: Shorter windows are noise at the kernel's 10 ms tick: keep the count until this much time has passed.
MIN_WINDOW_S = 0.2


@dataclass(frozen=True)
class CpuSample:
    """Cumulative CPU time in clock ticks: busy and total over all cores, and this process's own."""

    busy: int
    total: int
    own: int


def read_cpu_sample(
    stat: str = "/proc/stat", own_stat: str = "/proc/self/stat", cpus: frozenset[int] | None = None
) -> CpuSample | None:
    """The counters now (over ``cpus`` only, when given: the ones this process may run on), or None where the
    system has no ``/proc`` (or an unreadable one)."""
    try:
        with open(stat, encoding="ascii") as f:
            lines = [line.split() for line in f if line.startswith("cpu")]
        with open(own_stat, encoding="ascii") as f:
            after_name = f.read().rsplit(")", 1)[1].split()
        rows = [row[1:] for row in lines if _counts(row[0], cpus)]
        busy = total = 0
        for row in rows:
            fields = [int(v) for v in row] + [0] * (8 - len(row))
            user, nice, system, idle, iowait, irq, softirq, steal = fields[:8]
            row_busy = user + nice + system + irq + softirq + steal  # guest time is already inside user and nice
            busy, total = busy + row_busy, total + row_busy + idle + iowait
        own = int(after_name[11]) + int(after_name[12])  # utime + stime, all threads
    except (OSError, ValueError, IndexError):
        return None
    return CpuSample(busy=busy, total=total, own=own) if rows else None


def _counts(name: str, cpus: frozenset[int] | None) -> bool:
    """Whether a ``/proc/stat`` row counts: the ``cpu`` total line, or ``cpuN`` for N in ``cpus``."""
    if cpus is None:
        return name == "cpu"
    return name != "cpu" and int(name[3:]) in cpus


def allowed_cpus() -> frozenset[int] | None:
    """The CPUs this process may run on (affinity, cpusets), or None when that is every CPU or unknown."""
    getaffinity = getattr(os, "sched_getaffinity", None)
    if getaffinity is None:
        return None
    cpus = frozenset(getaffinity(0))
    return None if len(cpus) == (os.cpu_count() or len(cpus)) else cpus


def cores_left(before: CpuSample, after: CpuSample, cores: int) -> float:
    """Cores other processes left idle between two samples (``cores`` minus what they used)."""
    elapsed = after.total - before.total
    if elapsed <= 0:
        return float(cores)
    others = max(0, (after.busy - before.busy) - (after.own - before.own))
    return max(0.0, cores * (1.0 - others / elapsed))


def threads_for(idle_cores: float, max_threads: int) -> int:
    """One thread per idle core (rounded to the nearest, half a core counts), 1 to ``max_threads``."""
    return max(1, min(max_threads, int(idle_cores + 0.5)))


class CpuShare:
    """Adapts torch's intra-op thread count to the cores other processes leave idle; see the module doc.

    Creating one costs two small file reads and imports nothing: a command that never loads torch pays
    nothing more. The thread count torch has at the first :meth:`adjust` is the most it will set.
    """

    def __init__(self, max_threads: int | None = None, cores: int | None = None) -> None:
        self.max_threads = max_threads
        self.cpus = allowed_cpus()  # behind taskset or a cpuset only those CPUs' load matters
        self.cores = cores or (len(self.cpus) if self.cpus else os.cpu_count()) or 1
        self._last = self._sample() if _env_off_reason() is None else None
        self._last_time = time.monotonic()
        self.threads: int | None = None

    @property
    def enabled(self) -> bool:
        return self._last is not None

    def adjust(self) -> int | None:
        """Look again (when at least :data:`MIN_WINDOW_S` has passed) and set torch's thread count.

        Returns the count in use (None while torch is not loaded, or when sharing is off).
        """
        torch = sys.modules.get("torch")
        if self._last is None or torch is None:
            return None
        if self.threads is None:
            self.max_threads = self.max_threads or torch.get_num_threads()
            self.threads = torch.get_num_threads()
        now = time.monotonic()
        if self.max_threads < 2 or now - self._last_time < MIN_WINDOW_S:
            return self.threads
        sample = self._sample()
        if sample is None:
            return self.threads
        wanted = threads_for(cores_left(self._last, sample, self.cores), self.max_threads)
        self._last, self._last_time = sample, now
        if wanted != self.threads:
            torch.set_num_threads(wanted)
            self.threads = wanted
        return self.threads

    def _sample(self) -> CpuSample | None:
        return read_cpu_sample(cpus=self.cpus)

    def restore(self) -> None:
        """Give torch back the thread count it had at the first look (a Python caller's process goes on)."""
        torch = sys.modules.get("torch")
        if torch is not None and self.threads is not None and self.threads != self.max_threads:
            torch.set_num_threads(self.max_threads)
            self.threads = self.max_threads


def off_reason() -> str | None:
    """Why the image commands keep torch's thread count fixed here (None: they share), for ``jdsr doctor``."""
    reason = _env_off_reason()
    if reason is None and read_cpu_sample() is None:
        reason = "no /proc/stat on this system"
    return reason


def _env_off_reason() -> str | None:
    if os.environ.get(OPT_OUT_VARIABLE, "").strip() == "0":
        return f"{OPT_OUT_VARIABLE}=0"
    if "OMP_NUM_THREADS" in os.environ:
        return "OMP_NUM_THREADS is set"
    return None
