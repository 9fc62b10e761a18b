"""SIGINT (Ctrl-C) and SIGTERM (``kill``, job schedulers, containers): how this process stops cleanly.

Python turns SIGINT into ``KeyboardInterrupt`` but lets SIGTERM kill the process on the spot, leaving temp
files, no report and no checkpoint. Two ways to take them, both raising :class:`~jdsr_cli.errors.Interrupted`
(exit 130 / 143):

- :func:`signals_as_exceptions` (the image commands): both signals raise at the next bytecode, which unwinds
  through the atomic writers (they delete their temp file) to the command, which prints its summary and report.
- :class:`StopSignals` (a training run): the first signal only asks the run to stop; the current step finishes,
  ``last/`` is saved at that step (the Trainer's part), and the run raises naming the checkpoint kept and the
  resume command. A second signal stops at once, except inside a ``shield()`` block (a checkpoint being
  written), which it lets finish first: no checkpoint is ever half written, whatever the signals' timing.
  DataLoader worker processes ignore the signals (:func:`ignore_stop_signals`): the main process decides.

Either way the handlers exist only within the block and the previous ones come back afterwards, so library
users keep theirs. Handlers are installed on the main thread only (Python allows no other), and a signal the
process was started with ignored (``nohup``-like launchers, background jobs of a script) stays ignored.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType, TracebackType
from typing import Any

from jdsr_cli.errors import Interrupted

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_MESSAGES = {signal.SIGINT: "interrupted (Ctrl-C)", signal.SIGTERM: "terminated (SIGTERM)"}

Handler = Callable[[int, FrameType | None], None]


def catchable(signum: int) -> bool:
    """False for a signal this process ignores: whoever started it asked for that (Unix convention)."""
    return signal.getsignal(signum) is not signal.SIG_IGN


def signal_name(signum: int) -> str:
    """'SIGINT', 'SIGTERM'."""
    return signal.Signals(signum).name


def _install(handler: Handler) -> dict[int, Any]:
    """``handler`` for each catchable stop signal, on the main thread only; the handlers it replaced."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {signum: signal.signal(signum, handler) for signum in STOP_SIGNALS if catchable(signum)}


def _restore(previous: dict[int, Any]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)


def _raise_interrupted(signum: int, frame: FrameType | None) -> None:
    del frame
    raise Interrupted(signum, _MESSAGES.get(signal.Signals(signum), f"stopped by signal {signum}"))


@contextlib.contextmanager
def signals_as_exceptions() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM raise ``Interrupted``; outside (or off the main thread), nothing changes."""
    previous = _install(_raise_interrupted)
    try:
        yield
    finally:
        _restore(previous)


class StopSignals:
    """``with StopSignals() as stop:`` ... ``stop.signum`` is the first signal received, or None."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}
        self._pid = os.getpid()
        self._shields = 0
        self._deferred: int | None = None  # a second signal that arrived inside a shield

    def __enter__(self) -> StopSignals:
        self._previous = _install(self._handle)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        _restore(self._previous)
        self._previous = {}

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


def ignore_stop_signals(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: Ctrl-C, ``kill -- -PGID``, SLURM and systemd signal the whole process group;
    a data worker that died of it would crash the run mid-step. Workers ignore them and the main process stops
    cleanly at the step boundary, then shuts its workers down."""
    del worker_id
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
