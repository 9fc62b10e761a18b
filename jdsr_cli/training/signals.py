"""Stopping a training run cleanly on SIGINT (Ctrl-C) or SIGTERM (``kill``, job schedulers, containers).

The first signal only asks the run to stop: the current step finishes, ``last/`` is saved at that step
(the Trainer's part), and the run raises ``Interrupted`` naming the checkpoint kept and the resume
command. A second signal stops at once, except inside a ``shield()`` block (a checkpoint being written),
which it lets finish first: no checkpoint is ever half written, whatever the signals' timing.

The handlers exist for the duration of the run only; the previous ones come back afterwards. DataLoader
worker processes inherit them and ignore the signals: the main process decides when to stop.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType, TracebackType
from typing import Any

from jdsr_cli.errors import Interrupted

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """``with StopSignals() as stop:`` ... ``stop.signum`` is the first signal received, or None."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}
        self._pid = os.getpid()
        self._shields = 0
        self._deferred: int | None = None  # a second signal that arrived inside a shield

    def __enter__(self) -> StopSignals:
        from jdsr_cli.commands.interrupts import catchable

        if threading.current_thread() is threading.main_thread():  # Python allows handlers only there
            for signum in SIGNALS:
                if catchable(signum):
                    self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    @contextlib.contextmanager
    def shield(self) -> Iterator[None]:
        """A block a second signal must not cut short (a checkpoint save): the run stops right after it."""
        self._shields += 1
        try:
            yield
        finally:
            self._shields -= 1
        if self._deferred is not None and not self._shields:
            raise Interrupted(self._deferred, f"interrupted by {signal_name(self._deferred)}")

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if os.getpid() != self._pid:  # a forked DataLoader worker
            return
        if self.signum is None:
            self.signum = signum
        elif self._shields:
            self._deferred = signum
        else:
            raise Interrupted(signum, f"interrupted by {signal_name(signum)}")


def signal_name(signum: int) -> str:
    """'SIGINT', 'SIGTERM'."""
    return signal.Signals(signum).name


def ignore_stop_signals(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: Ctrl-C, ``kill -- -PGID``, SLURM and systemd signal the whole process group;
    a data worker that died of it would crash the run mid-step. Workers ignore them and the main process stops
    cleanly at the step boundary, then shuts its workers down."""
    del worker_id
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
