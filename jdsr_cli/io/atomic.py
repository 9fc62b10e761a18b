"""Atomic file writes: a temp file in the destination folder, then ``os.replace``.

An interrupted run never leaves a partial output, and a failed write never destroys an existing file.
Temp files are named ``.{name}.jdsr-{pid}-{random}.tmp``; a kill -9 can still leave one behind, and
:func:`remove_stale_temp_files` deletes those whose process is gone (ours only: this exact pattern).
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


def _final_mode(target: Path) -> int:
    """The mode a plain ``open(target, "wb")`` would give: the existing file's, else 0o666 minus umask.

    ``mkstemp`` creates 0o600 files, which would make every output private to its owner.
    """
    try:
        return target.stat().st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """Yield a binary file that replaces ``path`` only if the block finishes without error."""
    target = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.jdsr-{os.getpid()}-", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, _final_mode(target))
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path) as handle:
        handle.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


_TEMP_PATTERN = re.compile(r"^\..+\.jdsr-(\d+)-[A-Za-z0-9_]+\.tmp$")


def remove_stale_temp_files(folder: str | os.PathLike[str]) -> list[Path]:
    """Delete our temp files in ``folder`` left by processes that no longer run; returns what was removed."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = _TEMP_PATTERN.match(entry.name)
        if match is None or not entry.is_file(follow_symlinks=False) or process_alive(int(match.group(1))):
            continue
        with contextlib.suppress(OSError):
            os.unlink(entry.path)
            removed.append(Path(entry.path))
    return removed


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` may still be running here (unknown counts as running: never remove its files)."""
    if pid == os.getpid():
        return True
    if os.name != "posix":  # no harmless way to ask
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: someone else's live process
        return True
    return True
