"""Replace a folder as a whole, so that a kill at any moment leaves the old folder or the new one at its path.

A checkpoint is several files that must agree (``config.json`` holds the weights' sha256), so replacing
them one by one can leave a mix. Instead :func:`replace_folder` fills a staging sibling, fsyncs it,
then swaps it in. On Linux the swap is one atomic step, ``renameat2(RENAME_EXCHANGE)``::

    .NAME.jdsr-PID-RAND.new   filled and fsynced          (a kill here: NAME is still the old folder)
    exchange NAME and .NAME.jdsr-PID-RAND.new, fsync       (a kill here: NAME is the new folder)
    remove .NAME.jdsr-PID-RAND.new (now the old folder)

Where the exchange is not available (another system, a file system without it) it is two renames::

    NAME -> .NAME.jdsr-PID-RAND.old                       (a kill here: NAME is missing, both are complete)
    .NAME.jdsr-PID-RAND.new -> NAME, fsync the parent      (a kill here: NAME is the new folder)
    remove .NAME.jdsr-PID-RAND.old

:func:`recover_folder` (run by every save and by every load that finds NAME missing) finishes a swap that
a dead process left between the renames and removes that process's leftovers. Only names of this exact
pattern whose process is no longer running are ever touched.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import os
import re
import secrets
import shutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from jdsr_cli.io.atomic import host_tag, owner_gone, process_alive

STAGED, BACKUP = "new", "old"
_LEFTOVER = re.compile(
    r"^\.(?P<name>.+)\.jdsr-(?P<pid>\d+)-(?:(?P<host>[0-9a-f]{8})-)?(?P<rand>[0-9a-f]{8})\.(?P<kind>new|old)$"
)
#: tokens of the swaps this process is running now (its other leftovers are stale)
_ACTIVE: set[str] = set()


@dataclass(frozen=True)
class Leftover:
    """A staging or backup folder of ours next to ``NAME``."""

    path: Path
    kind: str  # STAGED | BACKUP
    token: str  # "PID-HOST-RAND" ("PID-RAND" from older versions), shared by the staging and backup folders of a swap
    host: str | None = None  # the host tag (``io.atomic.host_tag``); None in older names: this host

    @property
    def pid(self) -> int:
        return int(self.token.split("-", 1)[0])


def sibling(target: Path, kind: str, token: str) -> Path:
    """The staging (``kind="new"``) or backup (``"old"``) folder of swap ``token`` for ``target``."""
    return target.parent / f".{target.name}.jdsr-{token}.{kind}"


@contextlib.contextmanager
def replace_folder(folder: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield an empty staging folder that replaces ``folder`` as a whole when the block ends without error.

    Entries of the old folder that the block did not write (e.g. a training state next to a checkpoint)
    are carried over as hard links (copies where links are not possible). On an error the old folder is
    left as it was and the staging folder is removed. A symlink ``folder`` replaces the folder it points to.
    """
    target = _real_target(Path(folder))
    target.parent.mkdir(parents=True, exist_ok=True)
    recover_folder(target)

    token = f"{os.getpid()}-{host_tag()}-{secrets.token_hex(4)}"
    staging = sibling(target, STAGED, token)
    _ACTIVE.add(token)
    try:
        os.mkdir(staging)
        try:
            yield staging
            _carry_over(target, staging)
            _sync_tree(staging)
            _swap(target, staging, sibling(target, BACKUP, token))
        except BaseException as error:
            with contextlib.suppress(OSError):
                _remove(staging)
            if isinstance(error, OSError) and error.filename is None and error.errno is not None:
                # a write error (a full disk) names no file: say which folder could not be written
                raise OSError(error.errno, error.strerror, os.fspath(folder)) from error
            raise
    finally:
        _ACTIVE.discard(token)


def recover_folder(target: Path) -> None:
    """Finish the half-done swap of a dead process (``target`` missing), then remove dead leftovers."""
    dead = [item for item in leftovers(target) if not _owner_running(item)]
    if not os.path.lexists(target):
        for backup in (item for item in dead if item.kind == BACKUP):
            staged = sibling(target, STAGED, backup.token)
            # the staging folder was complete and fsynced before the backup rename: roll forward to it
            os.rename(staged if staged.is_dir() else backup.path, target)
            _fsync_dir(target.parent)
            break
    for item in dead:
        with contextlib.suppress(OSError):
            _remove(item.path)


def recover_missing(path: Path) -> None:
    """Before reporting ``path`` missing: recover the first missing folder on its way (best effort).

    Read-only locations and live swaps are left alone; the caller then reports what it finds.
    """
    missing = path
    while not os.path.lexists(missing.parent) and missing.parent != missing:
        missing = missing.parent
    with contextlib.suppress(OSError):
        recover_folder(missing)


def leftovers(target: Path) -> list[Leftover]:
    """Our staging and backup folders next to ``target`` (any process's)."""
    found = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(target.parent):
            match = _LEFTOVER.match(entry.name)
            if match and match["name"] == target.name:
                token = "-".join(part for part in (match["pid"], match["host"], match["rand"]) if part)
                found.append(Leftover(Path(entry.path), match["kind"], token, match["host"]))
    return sorted(found, key=lambda item: item.path.name)


# ------------------------------------------------------------------------------------------- steps


def _real_target(target: Path) -> Path:
    if target.is_symlink():
        target = target.resolve()
    if os.path.lexists(target) and not target.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "exists and is not a folder", str(target))
    return target


def _swap(target: Path, staging: Path, backup: Path) -> None:
    """One atomic exchange where the system has it, else two renames; an error between them puts the old
    folder back."""
    had_old = os.path.lexists(target)
    if had_old and _exchange(staging, target):
        _fsync_dir(target.parent)
        with contextlib.suppress(OSError):  # ``staging`` now holds the old folder; a later save removes the rest
            _remove(staging)
        return
    if had_old:
        os.rename(target, backup)
    try:
        os.rename(staging, target)
    except BaseException:
        if had_old:
            os.rename(backup, target)
        raise
    _fsync_dir(target.parent)
    if had_old:
        with contextlib.suppress(OSError):  # the new folder is in place; a later save removes the rest
            _remove(backup)


_RENAME_EXCHANGE, _AT_FDCWD = 2, -100
#: errors that mean "no exchange here" (old kernel or libc, a file system without it), not "the swap failed"
_NO_EXCHANGE = frozenset({errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV})


def _exchange(a: Path, b: Path) -> bool:
    """Swap the names ``a`` and ``b`` in one atomic step (Linux ``renameat2`` with ``RENAME_EXCHANGE``);
    False, having changed nothing, where that is not available."""
    function = _renameat2()
    if function is None:
        return False
    if function(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in _NO_EXCHANGE:
        return False
    raise OSError(code, os.strerror(code), os.fspath(b))


@functools.cache
def _renameat2() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)  # glibc >= 2.28, musl >= 1.2.2
    except OSError:
        return None
    if function is not None:
        function.restype = ctypes.c_int
        function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return function


def _carry_over(old: Path, staging: Path) -> None:
    """Link the old folder's entries that the new one lacks into it, and give it the old one's permissions
    (the old folder stays intact)."""
    if not old.is_dir():
        return
    shutil.copymode(old, staging)
    for entry in old.iterdir():
        destination = staging / entry.name
        if os.path.lexists(destination):
            continue
        if entry.is_symlink():
            os.symlink(os.readlink(entry), destination)
        elif entry.is_dir():
            shutil.copytree(entry, destination, symlinks=True, copy_function=_link_or_copy)
        else:
            _link_or_copy(entry, destination)


def _link_or_copy(source: str | os.PathLike[str], destination: str | os.PathLike[str]) -> None:
    try:
        os.link(source, destination)
    except OSError:  # a file system without hard links
        shutil.copy2(source, destination)


def _sync_tree(root: Path) -> None:
    """fsync every file and folder under ``root`` (what the renames publish must be on disk first)."""
    for folder, _, files in os.walk(root, topdown=False):
        for name in files:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                _fsync_path(path, os.O_RDONLY)
        _fsync_dir(Path(folder))


def _fsync_dir(folder: Path) -> None:
    if os.name == "posix":  # other systems cannot open a folder; their renames are what they are
        _fsync_path(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))


def _fsync_path(path: str | os.PathLike[str], flags: int) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    except OSError:
        if os.name == "posix":  # elsewhere a read-only handle may not be flushable; the rename still is atomic
            raise
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def _owner_running(item: Leftover) -> bool:
    """Whether the process that made ``item`` may still be using it (unknown counts as running). A process id
    means something on its own host only: another host's leftover counts as running until it is a day old."""
    if item.host is not None and item.host != host_tag():
        try:
            return not owner_gone(item.pid, item.host, item.path.lstat().st_mtime)
        except OSError:
            return True
    if item.pid == os.getpid():
        return item.token in _ACTIVE
    return process_alive(item.pid)
