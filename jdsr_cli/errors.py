"""Error types whose message is a complete one-line explanation for the user.

The CLI prints ``str(error)`` as is, so every message names the file (or option) and the reason.
"""

from __future__ import annotations


class JdsrError(Exception):
    """Base class: an expected failure with a user-facing one-line message."""


class UsageError(JdsrError):
    """Bad options or arguments (exit code 2)."""


class ImageReadError(JdsrError):
    """An input image could not be read or decoded."""


class ImageWriteError(JdsrError):
    """An output image could not be encoded or written."""


class ModelLoadError(JdsrError):
    """A checkpoint could not be found, downloaded, verified or rebuilt."""


class UnknownArchitectureError(ModelLoadError):
    """A state dict matched no registered architecture."""


class DeviceError(JdsrError):
    """A requested device or precision is not available."""
