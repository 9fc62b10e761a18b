"""Atomic writes: all or nothing, and the file mode an ordinary write would give."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from jdsr_cli.io.atomic import atomic_open, atomic_write_bytes


def test_new_file_gets_umask_mode_and_existing_mode_is_kept(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "new.bin", b"x")
        assert stat.S_IMODE((tmp_path / "new.bin").stat().st_mode) == 0o644
        (tmp_path / "kept.bin").write_bytes(b"old")
        os.chmod(tmp_path / "kept.bin", 0o640)
        atomic_write_bytes(tmp_path / "kept.bin", b"new")
        assert stat.S_IMODE((tmp_path / "kept.bin").stat().st_mode) == 0o640
    finally:
        os.umask(old)


def test_failure_keeps_previous_content_and_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "out.png"
    target.write_bytes(b"previous")
    with pytest.raises(RuntimeError), atomic_open(target) as handle:
        handle.write(b"partial")
        raise RuntimeError("interrupted mid-write")
    assert target.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]
