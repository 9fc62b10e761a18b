"""The texture term of ``--method adversarial`` (``texture_weight``): how much detail, not where it falls."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from jdsr_cli.training.config import load_config
from jdsr_cli.training.methods.texture import detail_energy, gaussian_blur, grid_signal, texture_loss
from jdsr_cli.training.trainer import Trainer


def _stripes(period: int, shift: int = 0, size: int = 64) -> torch.Tensor:
    x = torch.arange(size) + shift
    row = torch.where((x // (period // 2)) % 2 == 0, 0.2, 0.8)
    return row.expand(1, 3, size, size).clone()


def test_the_blur_is_a_normalised_gaussian_that_keeps_flat_images() -> None:
    flat = torch.full((1, 3, 20, 24), 0.37)
    assert torch.allclose(gaussian_blur(flat, 2.0), flat, atol=1e-6)
    impulse = torch.zeros(1, 1, 21, 21)
    impulse[0, 0, 10, 10] = 1.0
    spread = gaussian_blur(impulse, 1.0)[0, 0]
    assert spread.sum().item() == pytest.approx(1.0, abs=1e-5)
    assert spread[10, 9].item() / spread[10, 10].item() == pytest.approx(torch.exp(torch.tensor(-0.5)).item(), rel=1e-4)


def test_the_term_ignores_where_the_strokes_fall_but_not_whether_there_are_any() -> None:
    """The same stripes shifted by half a period are as far apart as they can be by L1, and ~0 apart by the
    texture term; a flat image of the same mean is far by both (and by exactly the target's detail energy)."""
    target, shifted = _stripes(8), _stripes(8, shift=4)
    flat = torch.full_like(target, float(target.mean()))
    assert (shifted - target).abs().mean() > 0.5
    assert texture_loss(shifted, target, 4).item() < 1e-3
    energy = sum(detail_energy(target, s).mean() for s in (1.0, 2.0)) / 2
    assert texture_loss(flat, target, 4).item() == pytest.approx(energy.item(), rel=1e-4)
    assert texture_loss(target, target, 4).item() == 0.0


def test_a_grid_at_the_upsamplers_period_costs_more_than_its_energy_buys() -> None:
    """A pattern repeating every 4 pixels has a grid signal (natural detail of the same energy, the stripes,
    has none), so it is charged for it at period 4 and not at period 1 (energy only)."""
    target = _stripes(8)
    grid = torch.full_like(target, 0.5)
    grid[..., ::4, ::4] += 0.3
    assert grid_signal(target, 4).abs().max().item() < 1e-6
    assert grid_signal(grid, 4).abs().mean().item() > 0.01
    assert texture_loss(grid, target, 4).item() > texture_loss(grid, target, 1).item() + 0.01


def test_a_run_with_texture_weight_logs_the_term_and_moves_the_network(data_dir: Path, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for path in sorted((data_dir / "train" / "BSD200").glob("*.png"))[:3]:
        Image.open(path).crop((0, 0, 96, 96)).save(photos / path.name)

    def run(name: str, texture_weight: float) -> Trainer:
        config = load_config(None, dict(
            data=str(photos), scale=2, arch="fsrcnn", method="adversarial", steps=4, batch_size=2, patch_size=16,
            val_every=4, save_every=4, log_every=1, out=str(tmp_path / name), device="cpu", workers=0, seed=3,
            val_fraction=0.34, method_options={"gan_weight": 0.0, "texture_weight": texture_weight}))
        trainer = Trainer(config)
        trainer.run()
        return trainer

    plain, textured = run("plain", 0.0), run("textured", 2.0)
    records = [json.loads(line) for line in (tmp_path / "textured" / "log.jsonl").read_text().splitlines()]
    steps = [r for r in records if "loss" in r]
    assert all(r["loss"] == pytest.approx(r["l1"] + 2.0 * r["texture"], rel=1e-4) for r in steps), steps[0]
    assert any(not torch.equal(a, b) for a, b in zip(plain.model.state_dict().values(),
                                                     textured.model.state_dict().values(), strict=True))
