"""jdsr distill-cache: a teacher's targets as patch pairs, resumable, and a student trained from them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from jdsr_cli.checkpoints.resolve import resolve_model
from jdsr_cli.cli.main import app


def jdsr(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    root = tmp_path_factory.mktemp("photos")
    for path in sorted((data_dir / "train" / "BSD200").glob("*.png"))[:4]:
        shutil.copy(path, root / path.name)
    return root


def _cache(photos: Path, out: Path, pairs: int, *extra: str):  # type: ignore[no-untyped-def]
    return jdsr("distill-cache", photos, "--teacher", "imdn-x2", "-s", "2", "--pairs", str(pairs), "--patch-size",
                "24", "--batch-size", "3", "--precision", "fp32", "--device", "cpu", "-o", out, *extra)


def test_pairs_are_the_teachers_output_on_the_stored_lr(photos: Path, tmp_path: Path) -> None:
    result = _cache(photos, tmp_path / "c", 5)
    assert result.exit_code == 0, result.output
    recipe = json.loads((tmp_path / "c" / "recipe.json").read_text())
    assert recipe["teacher"] == "imdn-x2" and recipe["scale"] == 2 and recipe["degradation"]["clean_prob"] == 0.2
    teacher = resolve_model("imdn-x2", scale=2).model.eval()
    for i in range(5):
        lr = np.asarray(Image.open(tmp_path / "c" / "lr" / f"{i:07d}.png"))
        target = np.asarray(Image.open(tmp_path / "c" / "target" / f"{i:07d}.png"))
        assert lr.shape == (24, 24, 3) and target.shape == (48, 48, 3)
        with torch.no_grad():
            out = teacher(torch.from_numpy(lr).permute(2, 0, 1)[None].float() / 255)
        expected = (out[0].permute(1, 2, 0).clamp(0, 1) * 255).round().to(torch.uint8).numpy()
        assert np.abs(expected.astype(int) - target.astype(int)).max() <= 1


def test_a_cache_made_in_two_stops_equals_one_made_at_once(photos: Path, tmp_path: Path) -> None:
    assert _cache(photos, tmp_path / "once", 6).exit_code == 0
    assert _cache(photos, tmp_path / "twice", 2).exit_code == 0
    (tmp_path / "twice" / "target" / "0000001.png").unlink()  # killed between a pair's two files
    result = _cache(photos, tmp_path / "twice", 6)
    assert result.exit_code == 0 and "5 pairs made" in result.output, result.output
    for sub in ("lr", "target"):
        for i in range(6):
            name = f"{i:07d}.png"
            assert np.array_equal(np.asarray(Image.open(tmp_path / "once" / sub / name)),
                                  np.asarray(Image.open(tmp_path / "twice" / sub / name))), (sub, name)


def test_another_recipe_or_a_foreign_folder_is_refused_in_one_line(photos: Path, tmp_path: Path) -> None:
    assert _cache(photos, tmp_path / "c", 2).exit_code == 0
    other = _cache(photos, tmp_path / "c", 3, "--seed", "1")
    assert other.exit_code == 2 and "another recipe (seed differ)" in other.output
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    foreign = _cache(photos, tmp_path / "mine", 2)
    assert foreign.exit_code == 2 and "not a distill cache" in foreign.output
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["notes.txt"]


def test_photos_as_they_are_are_cut_not_resampled(tmp_path: Path) -> None:
    """``--degradation none``: each LR patch is a window of a photo at its own resolution (in one of the 8
    flips/rotations). The photos encode each pixel's place (R = 5x, G = 5y, B = the photo), so neighbours in a
    cut differ by exactly 5 in one of R/G and 0 in the other, with one B; any resampling would break that."""
    photos = tmp_path / "photos"
    photos.mkdir()
    y, x = np.mgrid[0:50, 0:50]
    for k in range(3):
        pixels = np.stack([5 * x, 5 * y, np.full_like(x, 60 * k + 10)], axis=2).astype(np.uint8)
        Image.fromarray(pixels).save(photos / f"p{k}.png")
    result = _cache(photos, tmp_path / "c", 6, "--degradation", "none")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "c" / "recipe.json").read_text())["as_is"] is True
    for i in range(6):
        lr = np.asarray(Image.open(tmp_path / "c" / "lr" / f"{i:07d}.png")).astype(int)
        assert lr.shape == (24, 24, 3) and len(np.unique(lr[..., 2])) == 1
        for step in (np.diff(lr[..., :2], axis=0), np.diff(lr[..., :2], axis=1)):
            moves = {tuple(v) for v in step.reshape(-1, 2)}
            assert len(moves) == 1 and sorted(map(abs, moves.pop())) == [0, 5], (i, step[0, 0])
        target = np.asarray(Image.open(tmp_path / "c" / "target" / f"{i:07d}.png"))
        assert target.shape == (48, 48, 3)
    grown_as_bicubic = _cache(photos, tmp_path / "c", 8, "--degradation", "bicubic")
    assert grown_as_bicubic.exit_code == 2 and "another recipe (as_is differ)" in grown_as_bicubic.output


def test_a_cache_from_before_photos_as_they_are_still_grows(photos: Path, tmp_path: Path) -> None:
    assert _cache(photos, tmp_path / "c", 2).exit_code == 0
    recipe = json.loads((tmp_path / "c" / "recipe.json").read_text())
    del recipe["as_is"]  # as written before the field existed
    (tmp_path / "c" / "recipe.json").write_text(json.dumps(recipe))
    result = _cache(photos, tmp_path / "c", 3)
    assert result.exit_code == 0 and "1 pairs made" in result.output, result.output


def test_a_student_trains_from_the_cache_and_validates_on_its_pairs(photos: Path, tmp_path: Path) -> None:
    from jdsr_cli.training.config import load_config
    from jdsr_cli.training.dataset import build_data

    assert _cache(photos, tmp_path / "c", 12).exit_code == 0
    run = tmp_path / "run"
    result = jdsr("train", tmp_path / "c" / "target", "--lr-dir", tmp_path / "c" / "lr", "-s", "2", "--arch", "imdn",
                  "--preset", "small", "--steps", "2", "--batch-size", "2", "--patch-size", "16", "--val-every", "2",
                  "--workers", "0", "--device", "cpu", "--out", run)
    assert result.exit_code == 0, result.output
    config = load_config(None, {"data": str(tmp_path / "c" / "target"), "lr_dir": str(tmp_path / "c" / "lr"),
                                "scale": 2, "out": str(tmp_path / "x")})
    _, val, _ = build_data(config)
    stored = [np.asarray(Image.open(p)) for p in sorted((tmp_path / "c" / "lr").glob("*.png"))]
    assert val and all(any(np.array_equal(pair.lr, lr) for lr in stored) for pair in val)
