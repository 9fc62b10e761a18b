"""Error types whose message is a complete one-line explanation for the user.

The CLI prints ``str(error)`` as is, so every message names the file (or option) and the reason.
Each class carries the exit code the CLI ends with (``cli/main.py`` maps them in one place):
2 when the command could not start (bad option, unknown or unloadable model, missing device,
a run that cannot be resumed), 1 when it started and something failed.
"""

from __future__ import annotations


def one_line(error: BaseException, limit: int = 160) -> str:
    """The first line of an exception's message, cut to ``limit`` characters (torch's run to kilobytes)."""
    text = (str(error).strip().splitlines() or [type(error).__name__])[0]
    if len(text) > limit and ". " in text:  # torch appends paragraphs of advice to the first sentence
        text = text.split(". ")[0]
    return text if len(text) <= limit else text[: limit - 1] + "…"


def is_out_of_memory(error: BaseException) -> bool:
    """True for Python's MemoryError and the out-of-memory errors of CUDA, MPS and torch's CPU allocator.

    Read from the type's name and the message, so that code without torch (the batch runner) can ask too.
    """
    if isinstance(error, MemoryError) or type(error).__name__ == "OutOfMemoryError":
        return True
    if isinstance(error, RuntimeError):
        text = str(error).lower()
        return "out of memory" in text or "can't allocate memory" in text or "failed to allocate" in text
    return False


class JdsrError(Exception):
    """Base class: an expected failure with a user-facing one-line message."""

    exit_code = 1


class UsageError(JdsrError):
    """Bad options or arguments (exit code 2)."""

    exit_code = 2


class ImageReadError(JdsrError):
    """An input image could not be read or decoded."""


class ImageWriteError(JdsrError):
    """An output image could not be encoded or written."""


class ModelLoadError(JdsrError):
    """A checkpoint could not be found, downloaded, verified or rebuilt (the command cannot start)."""

    exit_code = 2


class UnknownArchitectureError(ModelLoadError):
    """A state dict matched no registered architecture."""


class DeviceError(JdsrError):
    """A requested device or precision is not available."""

    exit_code = 2


class ResourceError(JdsrError):
    """One piece of work needs more memory (or pixels) than allowed or available."""


class NonFiniteOutputError(JdsrError):
    """The model produced NaN or infinite values even in fp32 (broken weights)."""


class Interrupted(BaseException):
    """SIGINT (exit 130) or SIGTERM (exit 143) arrived; the command stops cleanly.

    A ``BaseException`` like ``KeyboardInterrupt``, so the broad ``except Exception`` around decoders and
    encoders cannot swallow it and turn a stop request into one file's failure.
    """

    def __init__(self, signum: int, message: str = "interrupted") -> None:
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum


class UnexpectedError(JdsrError):
    """An unforeseen exception, wrapped with where it happened and what is kept (exit 1).

    The original is the ``__cause__``, so ``--debug`` shows its traceback.
    """

    def __init__(self, error: BaseException, where: str, kept: str = "") -> None:
        kept = f"; {kept}" if kept else ""
        super().__init__(f"{type(error).__name__}: {one_line(error)} ({where}){kept} (--debug shows the traceback)")
