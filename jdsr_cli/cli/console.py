"""Rich console setup: colour and live progress only on a terminal, plain lines otherwise.

Rich itself honours ``NO_COLOR`` and ``TERM=dumb``; ``--quiet`` silences everything but errors.
"""

from __future__ import annotations

import os
import sys
from contextvars import ContextVar

from rich.console import Console


def make_console(*, quiet: bool = False, stderr: bool = False) -> Console:
    return Console(stderr=stderr, quiet=quiet, highlight=False, soft_wrap=True)


def error_console() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def live_progress_allowed(console: Console) -> bool:
    """Live bars need a terminal and no NO_COLOR; CI logs and pipes get one line per event."""
    return console.is_terminal and not console.quiet and "NO_COLOR" not in os.environ and sys.stdout.isatty()


#: ``jdsr --debug``: set by the root command for the duration of one invocation.
DEBUG: ContextVar[bool] = ContextVar("jdsr_debug", default=False)


def debug_enabled() -> bool:
    """``jdsr --debug ...`` or ``JDSR_DEBUG=1``: show tracebacks (per-file ones too)."""
    return DEBUG.get() or os.environ.get("JDSR_DEBUG", "") not in ("", "0")
