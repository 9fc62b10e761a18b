"""Atomic file writes: a temp file in the destination folder, then ``os.replace``.

An interrupted run never leaves a partial output, and a failed write never destroys an existing file.
Temp files are named ``.{name}.jdsr-{pid}-{host}-{random}.tmp`` (``host``: a tag of this machine and boot); a
kill -9 can still leave one behind, and :func:`remove_stale_temp_files` deletes those whose process is gone
(ours only: this exact pattern). A process id means something only on the machine that made it: a temp file
of another host (a shared folder, a multi-node run), or one without a host tag, is removed only once it has
been left untouched for ``STALE_ELSEWHERE_S``.

Inside :func:`no_clobber` a write never replaces a file: it is published with ``os.link``, which fails if
the name exists (a file that appeared after a batch decided to write there is not lost).
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import functools
import hashlib
import os
import re
import socket
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

#: how long a temp file of another host (or of unknown host) must be untouched before it counts as stale
STALE_ELSEWHERE_S = 24 * 3600
_NO_CLOBBER: contextvars.ContextVar[bool] = contextvars.ContextVar("jdsr_no_clobber", default=False)


def _final_mode(target: Path) -> int:
    """The mode a plain ``open(target, "wb")`` would give: the existing file's permissions, else 0o666 minus umask.

    ``mkstemp`` creates 0o600 files, which would make every output private to its owner. The existing file is
    looked at with ``lstat``: a link is replaced, so its target's mode is not ours to copy; setuid, setgid and
    sticky bits are never carried over to an output.
    """
    try:
        info = target.lstat()
        if stat.S_ISREG(info.st_mode):
            return info.st_mode & 0o777
    except FileNotFoundError:
        pass
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@functools.cache
def host_tag() -> str:
    """8 hex digits naming this machine and boot (hostname + Linux boot id): whose process ids a temp file's are."""
    boot = ""
    with contextlib.suppress(OSError):
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    return hashlib.sha256(f"{socket.gethostname()}/{boot}".encode()).hexdigest()[:8]


@contextlib.contextmanager
def no_clobber(enabled: bool = True) -> Iterator[None]:
    """Within the block, :func:`atomic_open` refuses to replace an existing file (``FileExistsError``)."""
    token = _NO_CLOBBER.set(enabled)
    try:
        yield
    finally:
        _NO_CLOBBER.reset(token)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """Yield a binary file that replaces ``path`` only if the block finishes without error."""
    target = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.jdsr-{os.getpid()}-{host_tag()}-", suffix=".tmp",
                                    dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, _final_mode(target))
        if _NO_CLOBBER.get():
            _publish_new(tmp_name, target)
        else:
            os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def _publish_new(tmp_name: str, target: Path) -> None:
    """Give the complete temp file the name ``target`` only if nothing has it (``FileExistsError`` otherwise)."""
    try:
        os.link(tmp_name, target)
    except FileExistsError:
        raise FileExistsError(errno.EEXIST, "exists (it appeared after the batch was planned)", str(target)) from None
    except OSError:  # a file system without hard links: check, then rename (a far smaller window)
        if os.path.lexists(target):
            raise FileExistsError(errno.EEXIST, "exists (it appeared after the batch was planned)",
                                  str(target)) from None
        os.replace(tmp_name, target)
        return
    os.unlink(tmp_name)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path) as handle:
        handle.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


_TEMP_PATTERN = re.compile(r"^\..+\.jdsr-(\d+)-(?:([0-9a-f]{8})-)?[A-Za-z0-9_]+\.tmp$")


def remove_stale_temp_files(folder: str | os.PathLike[str]) -> list[Path]:
    """Delete our temp files in ``folder`` left by processes that no longer run; returns what was removed."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = _TEMP_PATTERN.match(entry.name)
        if match is None or not entry.is_file(follow_symlinks=False):
            continue
        if not owner_gone(int(match.group(1)), match.group(2), entry.stat(follow_symlinks=False).st_mtime):
            continue
        with contextlib.suppress(OSError):
            os.unlink(entry.path)
            removed.append(Path(entry.path))
    return removed


def owner_gone(pid: int, host: str | None, mtime: float) -> bool:
    """Whether the process that made a file of ours is gone: a dead process of this host, or (another host's, or a
    name without a host) a file untouched for ``STALE_ELSEWHERE_S``."""
    if host == host_tag():
        return not process_alive(pid)
    return time.time() - mtime > STALE_ELSEWHERE_S


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
