"""Shared fixtures. Real images come from ../shared/data (override with JDSR_DATA); never downloaded."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    return Path(os.environ.get("JDSR_DATA", REPO_ROOT.parent / "shared" / "data")).resolve()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared real-image folder; tests that need it are skipped with a reason when it is absent."""
    path = shared_data_dir()
    if not (path / "benchmark").is_dir():
        pytest.skip(f"shared data not found at {path} (set JDSR_DATA)")
    return path
