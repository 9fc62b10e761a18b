"""The hidden work folder beside a video's output, which makes a killed job resume where it stopped.

``.NAME.jdsr-video/`` next to the output ``NAME`` holds ``job.json`` (what the segments were made from: the
input's size and time, the model and encoder settings, the segment length), the finished segments
``seg-000000.bin``, ... (each written atomically: complete or absent) and, once every frame is encoded,
``done.json``. A re-run of the same job keeps the segments and goes on after the last one; any change to the
input or the settings starts the folder afresh. The folder is removed once the output is published. A lock
(``flock``) keeps a second process off a folder in use.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from jdsr_cli.errors import ImageWriteError
from jdsr_cli.io.atomic import atomic_write_bytes, atomic_write_text, remove_stale_temp_files
from jdsr_cli.io.video_segments import segment_complete

_JOB, _DONE, _LOCK = "job.json", "done.json", "lock"


def work_folder_for(output: Path) -> Path:
    """Where ``output``'s segments are kept: a hidden folder beside it (skipped when folders are searched)."""
    return output.parent / f".{output.name}.jdsr-video"


def input_identity(path: Path) -> dict[str, Any]:
    """The input as a re-run sees it: a changed file (size or modification time) starts the work afresh."""
    info = path.stat()
    return {"path": str(path.resolve()), "size": info.st_size, "mtime_ns": info.st_mtime_ns}


class WorkFolder:
    """The segments of one output; use as a context manager (it holds the lock)."""

    def __init__(self, output: Path) -> None:
        self.output = output
        self.path = work_folder_for(output)
        self._lock: int | None = None

    def __enter__(self) -> WorkFolder:
        self.path.mkdir(exist_ok=True)
        fd = os.open(self.path / _LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ImageWriteError(f"{self.output}: another jdsr process is making this video "
                                  f"(its work folder {self.path} is locked)") from None
        self._lock = fd
        remove_stale_temp_files(self.path)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._lock is not None:
            os.close(self._lock)  # closing the descriptor releases the lock
            self._lock = None

    def resume(self, job: dict[str, Any]) -> int:
        """How many finished segments a job described by ``job`` can keep (0 when the folder was another job's)."""
        if self._stored(_JOB) != job:
            self._clear()
            atomic_write_text(self.path / _JOB, json.dumps(job, indent=1, sort_keys=True) + "\n")
            return 0
        count = 0
        while segment_complete(self.segment(count)):
            count += 1
        return count

    def finished(self) -> tuple[int, int, list[str]] | None:
        """(segments, frames, the decoder's warnings) once every frame was encoded (only muxing is left), else None."""
        done = self._stored(_DONE)
        if not isinstance(done, dict) or not {"segments", "frames", "warnings"} <= set(done):
            return None
        return int(done["segments"]), int(done["frames"]), [str(w) for w in done["warnings"]]

    def mark_finished(self, segments: int, frames: int, warnings: list[str]) -> None:
        record = {"segments": segments, "frames": frames, "warnings": warnings}
        atomic_write_text(self.path / _DONE, json.dumps(record) + "\n")

    def segment(self, index: int) -> Path:
        return self.path / f"seg-{index:06d}.bin"

    def save_segment(self, index: int, data: bytes) -> None:
        atomic_write_bytes(self.segment(index), data)

    def remove(self) -> None:
        """Delete the folder (the output is published, or the input is bad: nothing in it is worth keeping)."""
        shutil.rmtree(self.path, ignore_errors=True)

    def _stored(self, name: str) -> Any:
        with contextlib.suppress(OSError, ValueError):
            return json.loads((self.path / name).read_text())
        return None

    def _clear(self) -> None:
        for entry in self._entries():
            if entry.name != _LOCK:
                with contextlib.suppress(FileNotFoundError):
                    entry.unlink()

    def _entries(self) -> Iterator[Path]:
        return (p for p in self.path.iterdir() if p.is_file())
