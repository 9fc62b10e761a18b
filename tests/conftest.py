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


@pytest.fixture(scope="session")
def trained_checkpoint(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """A real ×2 checkpoint: EDSR-tiny (the JDSR peer shape) trained by `jdsr train`'s Trainer for 300
    steps on 24 BSD200 images. It beats bicubic by about 1 dB on Set5, so tests can check real sharpening."""
    import torch

    from jdsr_cli.training.config import load_config
    from jdsr_cli.training.trainer import Trainer

    images = tmp_path_factory.mktemp("train_images")
    for path in sorted((data_dir / "train" / "BSD200").glob("*.png"))[:24]:
        (images / path.name).write_bytes(path.read_bytes())
    run = tmp_path_factory.mktemp("ckpt") / "edsr-tiny-x2"
    config = load_config(None, dict(
        data=str(images), scale=2, arch="edsr", preset="tiny", steps=300, batch_size=8, patch_size=24, lr=1e-3,
        val_every=300, save_every=300, log_every=100, out=str(run), device="cpu", workers=0, seed=0,
        val_fraction=0.05,
    ))
    threads = torch.get_num_threads()
    Trainer(config, log=lambda _: None).run()
    torch.set_num_threads(threads)
    return run / "last"
