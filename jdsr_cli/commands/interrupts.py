"""SIGINT and SIGTERM as one exception, so a long command can stop cleanly and say what it did.

Python turns SIGINT into ``KeyboardInterrupt`` but lets SIGTERM kill the process on the spot, leaving
temp files and no report. Inside :func:`signals_as_exceptions` both raise
:class:`~jdsr_cli.errors.Interrupted` (exit 130 / 143) at the next bytecode, which unwinds through the
atomic writers (they delete their temp file) to the command, which prints its summary and report.
The previous handlers are restored on exit, so library users keep theirs. A signal the process was
started with ignored (``nohup``-like launchers, background jobs of a script) stays ignored.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

from jdsr_cli.errors import Interrupted

_NAMES = {signal.SIGINT: "interrupted (Ctrl-C)", signal.SIGTERM: "terminated (SIGTERM)"}


def _raise_interrupted(signum: int, frame: FrameType | None) -> None:
    del frame
    raise Interrupted(signum, _NAMES.get(signal.Signals(signum), f"stopped by signal {signum}"))


def catchable(signum: int) -> bool:
    """False for a signal this process ignores: whoever started it asked for that (Unix convention)."""
    return signal.getsignal(signum) is not signal.SIG_IGN


@contextlib.contextmanager
def signals_as_exceptions() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM raise ``Interrupted``; outside, nothing changes.

    Off the main thread (where handlers cannot be installed) this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _raise_interrupted) for sig in _NAMES if catchable(sig)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
