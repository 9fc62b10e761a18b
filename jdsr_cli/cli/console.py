"""Rich console setup: colour and live progress only on a terminal, plain lines otherwise.

Rich itself honours ``NO_COLOR`` and ``TERM=dumb``; ``--quiet`` silences everything but errors.

What we print is full of strings from files: file names, config.json values, model names. So the consoles
interpret no Rich markup (``[/]`` in a name crashed a table, ``[link=...]`` rendered), and every string they
render shows its control characters as ``\\xNN`` escapes: an ESC sequence in a file name cannot recolour or
retitle the terminal (Rich itself drops only BEL, BS, VT, FF and CR).
"""

from __future__ import annotations

import os
import re
import sys
from contextvars import ContextVar
from typing import Any

from rich.console import Console

#: C0 controls but tab and newline, DEL, C1 controls, and the bidirectional overrides that reorder a line
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_CONTROL_OR_NEWLINE = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str, *, newlines: bool = False) -> str:
    """``text`` with control characters written as ``\\xNN`` (``\\u202e``...); newlines too unless ``newlines``
    (a name inside a one-line message must not start a line of its own)."""
    pattern = _CONTROL if newlines else _CONTROL_OR_NEWLINE
    return pattern.sub(lambda m: f"\\x{ord(m[0]):02x}" if ord(m[0]) < 0x100 else f"\\u{ord(m[0]):04x}", text)


class SafeConsole(Console):
    """A Console that renders every string without markup and with its control characters escaped."""

    def render_str(self, text: str, **kwargs: Any) -> Any:  # type: ignore[override]
        kwargs["markup"] = False
        return super().render_str(printable(text, newlines=True), **kwargs)


def make_console(*, quiet: bool = False, stderr: bool = False) -> Console:
    return SafeConsole(stderr=stderr, quiet=quiet, highlight=False, soft_wrap=True, markup=False)


def error_console() -> Console:
    return SafeConsole(stderr=True, highlight=False, soft_wrap=True, markup=False)


def live_progress_allowed(console: Console) -> bool:
    """Live bars need a terminal and no NO_COLOR; CI logs and pipes get one line per event."""
    return console.is_terminal and not console.quiet and "NO_COLOR" not in os.environ and sys.stdout.isatty()


#: ``jdsr --debug``: set by the root command for the duration of one invocation.
DEBUG: ContextVar[bool] = ContextVar("jdsr_debug", default=False)


def debug_enabled() -> bool:
    """``jdsr --debug ...`` or ``JDSR_DEBUG=1``: show tracebacks (per-file ones too)."""
    return DEBUG.get() or os.environ.get("JDSR_DEBUG", "") not in ("", "0")
