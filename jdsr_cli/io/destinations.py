"""Checks on where a command will write, made before any work: an unusable ``-o`` or ``--json`` is a
usage error (exit 2, one line naming the option) instead of one failure per file or a traceback at the end.

``-o`` is a folder, or the one output's file name when it ends in an image or video extension and is not a folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

from jdsr_cli.errors import UsageError
from jdsr_cli.io.formats import format_from_path, format_supports_lossless, normalize_format
from jdsr_cli.io.plugins import missing_writer_message, writer_available
from jdsr_cli.io.video import is_video_path


def check_output_folder(path: Path | None, option: str = "-o") -> None:
    """``path`` is a folder, or can be created as one and written to."""
    if path is None:
        return
    _check_creatable(path.expanduser(), option)


def check_output_file(
    path: Path, shown: Path, *, fmt: str | None, suffix: str | None, lossless: bool = False
) -> None:
    """``-o NAME.EXT`` (one output file): writable, in a format we can write, agreeing with the options."""
    _check_creatable(path.parent, "-o", shown=shown)
    if is_video_path(path):  # a clip's output: its encoder is checked against the container with the input
        if suffix is not None:
            raise UsageError(f"--suffix {suffix!r}: -o {shown} already names the output file")
        return
    canonical = format_from_path(path)
    if canonical is None:
        raise UsageError(f"-o {shown}: not an image file name")
    if not writer_available(canonical):
        raise UsageError(f"-o {shown}: {missing_writer_message(canonical)}")
    if fmt is not None and normalize_format(fmt) != canonical:
        raise UsageError(f"-o {shown}: a {canonical.upper()} file name, but --format {fmt}; drop one of them")
    if lossless and not format_supports_lossless(canonical):
        raise UsageError(f"--lossless: -o {shown} is {canonical.upper()}, which cannot be saved losslessly")
    if suffix is not None:
        raise UsageError(f"--suffix {suffix!r}: -o {shown} already names the output file")


def check_report_file(path: Path | None, option: str = "--json") -> None:
    """A JSON report's path: writable, not named like an image (``--json photo.png`` replaced the photo), and new
    or an earlier report of ours (``--json notes.txt`` replaced the notes)."""
    if path is None:
        return
    if format_from_path(path) is not None:
        raise UsageError(f"{option} {path}: an image's file name; the report is JSON, name it e.g. report.json")
    check_writable_file(path, option, example="report.json")
    target = path.expanduser()
    if os.path.lexists(target) and not _is_report(target):
        raise UsageError(f"{option} {path}: exists and is not a jdsr report; give a new file name, e.g. "
                         f"{path.with_name('report.json')} (it is not replaced)")


#: (keys of a batch report) and (keys of an eval report): what an earlier ``--json`` of ours holds
_REPORT_KEYS = ({"jdsr_version", "command", "summary", "files"}, {"model", "sets"})


def _is_report(path: Path) -> bool:
    """Whether ``path`` is a regular file holding a report jdsr wrote, or empty (a link or anything else is not)."""
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > 256 * 2**20:
            return False
        if path.stat().st_size == 0:  # e.g. made by mktemp for the report: nothing to lose
            return True
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and any(keys <= data.keys() for keys in _REPORT_KEYS)


def check_writable_file(path: Path, option: str, *, example: str) -> None:
    """``path`` can be written as a file: not a folder, and its parent is (or can become) a writable folder."""
    target = path.expanduser()
    if target.is_dir():
        raise UsageError(f"{option} {path}: is a folder; give a file name such as {path / example}")
    _check_creatable(target.parent, option, shown=path)


def _check_creatable(folder: Path, option: str, *, shown: Path | None = None) -> None:
    """The nearest existing ancestor of ``folder`` is a writable folder (so ``folder`` exists or can be made)."""
    shown = shown if shown is not None else folder
    existing = folder
    while not existing.exists() and existing != existing.parent:
        if existing.is_symlink():  # a dangling link: creating through it would surprise
            raise UsageError(f"{option} {shown}: {existing} is a broken symbolic link")
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"{option} {shown}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"{option} {shown}: {existing} is not writable")
