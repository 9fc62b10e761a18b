"""`jdsr eval`: the standard protocol, checked against an independent computation to 0.01 dB."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image as PILImage
from typer.testing import CliRunner

from jdsr_cli.checkpoints.load import load_checkpoint
from jdsr_cli.cli.main import app

runner = CliRunner()


def _independent_psnr_y(model: torch.nn.Module, lr: np.ndarray, hr: np.ndarray, scale: int) -> float:
    """EDSR's calc_psnr: quantise SR, project the RGB *difference* with (65.738, 129.057, 25.064)/256,
    shave `scale` pixels, PSNR with values in [0, 1]. Written here without any jdsr metric code."""
    x = torch.from_numpy(lr.copy()).permute(2, 0, 1)[None].float() / 255
    with torch.inference_mode():
        sr = model(x)[0].clamp(0, 1).mul(255).add(0.5).floor().permute(1, 2, 0).double().numpy()
    diff = (sr - hr.astype(np.float64)) / 255
    y = diff @ (np.array([65.738, 129.057, 25.064]) / 256)
    y = y[scale:-scale, scale:-scale]
    return float(-10 * np.log10(np.mean(y**2)))


def _rgb(path: Path) -> np.ndarray:
    return np.asarray(PILImage.open(path).convert("RGB"))


def test_eval_matches_an_independent_computation(tmp_path: Path, data_dir: Path, trained_checkpoint: Path) -> None:
    report = tmp_path / "eval.json"
    result = runner.invoke(app, ["eval", str(trained_checkpoint), "--data", str(data_dir), "--sets", "Set5,Set14",
                                 "--json", str(report), "--save-images", str(tmp_path / "sr")])
    assert result.exit_code == 0, result.output
    assert "PSNR-Y crop=2 / SSIM-Y crop=2" in result.output
    sets = {s["set"]: s for s in json.loads(report.read_text())["sets"]}
    model = load_checkpoint(trained_checkpoint).model
    for name, entry in sets.items():
        folder = data_dir / "benchmark" / name
        independent = []
        for hr_path in sorted((folder / "HR").glob("*.png")):
            hr = _rgb(hr_path)
            hr = hr[: hr.shape[0] // 2 * 2, : hr.shape[1] // 2 * 2]
            lr = _rgb(folder / "LR_bicubic" / "X2" / f"{hr_path.stem}x2.png")
            independent.append(_independent_psnr_y(model, lr, hr, 2))
        assert abs(entry["psnr"] - float(np.mean(independent))) < 0.01, (name, entry["psnr"], np.mean(independent))
    assert len(list((tmp_path / "sr" / "Set14").glob("*_x2.png"))) == 14


def test_eval_generates_lr_when_a_set_has_none(tmp_path: Path, data_dir: Path, trained_checkpoint: Path) -> None:
    hr_dir = tmp_path / "data" / "benchmark" / "B100" / "HR"
    hr_dir.mkdir(parents=True)
    for name in ("img_001.png", "img_002.png"):
        (hr_dir / name).symlink_to(data_dir / "benchmark" / "B100" / "HR" / name)
    report = tmp_path / "b100.json"
    result = runner.invoke(app, ["eval", str(trained_checkpoint), "--data", str(tmp_path / "data"), "--sets", "B100",
                                 "--json", str(report)])
    assert result.exit_code == 0, result.output
    [entry] = json.loads(report.read_text())["sets"]
    assert [i["name"] for i in entry["images"]] == ["img_001", "img_002"] and entry["psnr"] > 25


def test_eval_usage_errors(tmp_path: Path, data_dir: Path, trained_checkpoint: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("JDSR_DATA", raising=False)
    missing_data = runner.invoke(app, ["eval", str(trained_checkpoint)])
    assert missing_data.exit_code == 2 and "--data" in missing_data.output
    unknown_set = runner.invoke(app, ["eval", str(trained_checkpoint), "--data", str(tmp_path), "--sets", "Urban100"])
    assert unknown_set.exit_code == 2 and "Urban100" in unknown_set.output
    wrong_scale = runner.invoke(app, ["eval", str(trained_checkpoint), "--data", str(data_dir), "-s", "4"])
    assert wrong_scale.exit_code == 2 and "is a ×2 model; drop -s or pick a ×4 model" in wrong_scale.output
    assert "--outscale" not in wrong_scale.output  # an upscale option: eval has none
    unknown = runner.invoke(app, ["eval", "no-such-model", "--data", str(data_dir)])
    assert unknown.exit_code == 2 and "MODEL 'no-such-model': not a file" in unknown.output


def test_bicubic_baseline_reproduces_the_published_figure(data_dir: Path, tmp_path: Path) -> None:
    """MATLAB bicubic on Set5 ×4 is 28.42 dB PSNR-Y in the literature (e.g. the VDSR/IMDN tables)."""
    report = tmp_path / "bicubic.json"
    result = runner.invoke(app, ["eval", "bicubic", "-s", "4", "--data", str(data_dir), "--sets", "Set5",
                                 "--json", str(report)])
    assert result.exit_code == 0, result.output
    [entry] = json.loads(report.read_text())["sets"]
    assert abs(entry["psnr"] - 28.42) < 0.02
    assert runner.invoke(app, ["eval", "bicubic", "--data", str(data_dir)]).exit_code == 2


def test_eval_niqe_column_and_report(data_dir: Path, tmp_path: Path) -> None:
    """`--metric niqe`: NIQE of each saved SR image (crop = scale) in the table and the JSON; an SR with no
    whole 96×96 block after the crop has none (n/a, null) and stays out of the mean. Without it, no trace."""
    from jdsr_cli.ops.niqe import niqe

    hr_dir = tmp_path / "data" / "benchmark" / "Tiny" / "HR"
    hr_dir.mkdir(parents=True)
    (hr_dir / "bird.png").symlink_to(data_dir / "benchmark" / "Set5" / "HR" / "bird.png")
    PILImage.fromarray(np.random.default_rng(0).integers(0, 256, (60, 64, 3), dtype=np.uint8)).save(hr_dir / "dots.png")
    report = tmp_path / "niqe.json"
    args = ["eval", "bicubic", "-s", "2", "--data", str(tmp_path / "data"), "--sets", "Tiny"]
    result = runner.invoke(app, [*args, "--metric", "niqe", "--json", str(report),
                                 "--save-images", str(tmp_path / "sr")])
    assert result.exit_code == 0, result.output
    assert "NIQE-Y crop=2 of the SR (lower is better)" in result.output and "n/a" in result.output
    [entry] = json.loads(report.read_text())["sets"]
    bird, dots = entry["images"]
    sr = _rgb(tmp_path / "sr" / "Tiny" / "bird_x2.png")
    assert bird["niqe"] == round(niqe(sr, crop=2), 4) and dots["niqe"] is None and entry["niqe"] == bird["niqe"]
    assert bird["niqe"] > niqe(_rgb(hr_dir / "bird.png"), crop=2)  # bicubic blur is less natural than the HR

    plain = tmp_path / "plain.json"
    without = runner.invoke(app, [*args, "--json", str(plain)])
    assert without.exit_code == 0 and "NIQE" not in without.output
    [entry] = json.loads(plain.read_text())["sets"]
    assert "niqe" not in entry and all("niqe" not in i for i in entry["images"])
    unknown = runner.invoke(app, [*args, "--metric", "niqe,lpips"])
    assert unknown.exit_code == 2 and "--metric lpips" in unknown.output
