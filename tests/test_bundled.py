"""The bundled models: present, intact, and as good as the figures recorded next to them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

from jdsr_cli.checkpoints.manifest import load_manifest
from jdsr_cli.checkpoints.resolve import resolve_model
from jdsr_cli.ops.metrics import MetricConvention
from jdsr_cli.ops.resize import imresize

BUNDLED = [e for e in load_manifest().entries if e.source == "bundled"]


def test_a_default_x4_model_is_bundled() -> None:
    default = load_manifest().default_for_scale(4)
    assert default is not None and default.source == "bundled"
    assert resolve_model(None, scale=None).name == default.name


@pytest.mark.parametrize("entry", BUNDLED, ids=[e.name for e in BUNDLED])
def test_bundled_model_reproduces_its_recorded_set5_figure(entry, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    """Recompute PSNR-Y on Set5 from the stored oracle LR files (not our resize) and compare."""
    loaded = resolve_model(entry.name, scale=None)  # also checks the manifest sha256
    scale = loaded.model_scale
    convention = MetricConvention.standard(scale)
    set5 = data_dir / "benchmark" / "Set5"
    ours, bicubic = [], []
    for hr_path in sorted((set5 / "HR").glob("*.png")):
        hr = np.asarray(PILImage.open(hr_path).convert("RGB"))
        hr = hr[: hr.shape[0] - hr.shape[0] % scale, : hr.shape[1] - hr.shape[1] % scale]
        lr = np.asarray(PILImage.open(set5 / "LR_bicubic" / f"X{scale}" / f"{hr_path.stem}x{scale}.png").convert("RGB"))
        x = torch.from_numpy(lr.copy()).permute(2, 0, 1)[None].float() / 255
        with torch.inference_mode():
            sr = loaded.model(x)[0].clamp(0, 1).permute(1, 2, 0).numpy()
        ours.append(convention.psnr(np.floor(sr * 255 + 0.5).astype(np.uint8), hr))
        up = imresize(x[0].double(), scale=scale).clamp(0, 1).permute(1, 2, 0).numpy()
        bicubic.append(convention.psnr(np.floor(up * 255 + 0.5).astype(np.uint8), hr))
    measured = float(np.mean(ours))
    assert abs(measured - entry.metrics["Set5"]["psnr"]) < 0.01, (measured, entry.metrics["Set5"])
    assert measured > float(np.mean(bicubic)) + 0.5, f"{convention.psnr_label}: {measured} vs bicubic {np.mean(bicubic)}"
