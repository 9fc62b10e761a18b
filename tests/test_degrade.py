"""The realistic degradation chain (issue 17): kernels against closed forms, the chain's size, determinism and
settings, and ``jdsr train --degradation realistic`` end to end with exact resume."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from jdsr_cli.errors import UsageError
from jdsr_cli.ops.degrade import Degradation, degrade, sharpen
from jdsr_cli.ops.kernels import bessel_j1, gaussian, generalized_gaussian, plateau, sinc


def test_kernels_match_their_closed_forms() -> None:
    g = cv2.getGaussianKernel(13, 1.7)
    np.testing.assert_allclose(gaussian(13, 1.7, 1.7), (g @ g.T).astype(np.float32), atol=1e-6)
    np.testing.assert_allclose(generalized_gaussian(11, 2.0, 1.0, 0.4, 1.0), gaussian(11, 2.0, 1.0, 0.4), atol=1e-7)
    rotated = gaussian(15, 3.0, 1.0, math.pi / 2)  # a quarter turn swaps the axes
    np.testing.assert_allclose(rotated, gaussian(15, 1.0, 3.0, 0.0), atol=1e-7)
    np.testing.assert_allclose(bessel_j1(np.array([0.0, 1.0, 5.0, 12.0])),
                               [0.0, 0.4400505857449335, -0.3275791375914652, -0.2234471044906276], atol=1e-9)
    for kernel in (sinc(21, math.pi / 4), plateau(9, 1.5, 1.0, 0.3, 1.5)):
        assert abs(float(kernel.sum()) - 1) < 1e-5 and np.allclose(kernel, kernel[::-1, ::-1], atol=1e-7)
    assert sinc(21, math.pi / 4)[10, 10] == sinc(21, math.pi / 4).max()


@pytest.fixture(scope="module")
def butterfly(data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """HR (float32, modcropped to ×4) and the MATLAB-bicubic LR oracle of Set5's butterfly."""
    from jdsr_cli.io.image import read_image

    hr = read_image(data_dir / "benchmark" / "Set5" / "HR" / "butterfly.png").color
    lr = read_image(data_dir / "benchmark" / "Set5" / "LR_bicubic" / "X4" / "butterflyx4.png").color
    return hr[: lr.shape[0] * 4, : lr.shape[1] * 4], lr


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return 10 * math.log10(255.0**2 / float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)))


def test_the_chain_is_seeded_sized_and_as_harsh_as_its_settings(butterfly) -> None:  # type: ignore[no-untyped-def]
    hr, bicubic = butterfly
    lr = degrade(hr, 4, np.random.default_rng([7, 1]))
    assert lr.dtype == np.uint8 and lr.shape == bicubic.shape
    assert np.array_equal(lr, degrade(hr, 4, np.random.default_rng([7, 1])))  # a function of the seed alone
    assert not np.array_equal(lr, degrade(hr, 4, np.random.default_rng([7, 2])))
    from jdsr_cli.io.quantize import to_uint8
    from jdsr_cli.ops.degrade import MODES

    size = (bicubic.shape[1], bicubic.shape[0])
    plain = [to_uint8(cv2.resize(hr, size, interpolation=mode)) for mode in MODES]  # what no blur/noise/JPEG leaves

    def closest(lr: np.ndarray) -> float:
        return max(_psnr(lr, candidate) for candidate in plain)

    harsh = np.mean([closest(degrade(hr, 4, np.random.default_rng([7, i]))) for i in range(6)])
    gentle = Degradation(kernel_prob=(1, 0, 0, 0, 0, 0), kernel_prob2=(1, 0, 0, 0, 0, 0), sinc_prob=0, sinc_prob2=0,
                         blur_sigma=(0.2, 0.2), second_blur_prob=0, resize_prob=(0, 0, 1), resize_prob2=(0, 0, 1),
                         gaussian_noise_prob=1, noise_range=(0, 0), gaussian_noise_prob2=1, noise_range2=(0, 0),
                         jpeg_range=(100, 100), jpeg_range2=(100, 100), final_sinc_prob=0)
    clean = closest(degrade(hr, 4, np.random.default_rng([7, 1]), gentle))
    # near-delta blur, no noise, quality-100 JPEG (4:2:0 chroma): one of the three plain resizes of the HR
    assert clean > 29 and harsh < clean - 5, (clean, harsh)


def test_settings_are_checked_in_one_line() -> None:
    assert Degradation.from_table({"jpeg_range": [50, 60]}).jpeg_range == (50.0, 60.0)
    for table, message in (({"jpeg": 3}, "unknown setting"), ({"jpeg_range": [60, 50]}, "low end is above"),
                           ({"final_sinc_prob": 1.5}, "a probability between 0 and 1"),
                           ({"noise_range": "big"}, "a list of 2 numbers"), ({"sharpen_hr": 1}, "true or false"),
                           ({"kernel_prob": [1, 0]}, "a list of 6 numbers")):
        with pytest.raises(UsageError, match=message):
            Degradation.from_table(table)


def test_sharpening_raises_edge_contrast_only(butterfly) -> None:  # type: ignore[no-untyped-def]
    hr, _ = butterfly
    sharp = sharpen(hr)
    assert sharp.shape == hr.shape and 0 <= sharp.min() and sharp.max() <= 1
    assert np.abs(cv2.Laplacian(sharp, cv2.CV_32F)).mean() > np.abs(cv2.Laplacian(hr, cv2.CV_32F)).mean()
    flat = np.full((64, 64, 3), 0.5, np.float32)
    np.testing.assert_allclose(sharpen(flat), flat, atol=1e-6)


def _photos(tmp_path: Path, data_dir: Path) -> Path:
    root = tmp_path / "photos"
    root.mkdir()
    for path in sorted((data_dir / "train" / "BSD200").glob("*.png"))[:5]:
        (root / path.name).write_bytes(path.read_bytes())
    return root


def test_realistic_samples_are_a_function_of_seed_and_index(tmp_path: Path, data_dir: Path) -> None:
    from jdsr_cli.training.data import find_images, load_pairs
    from jdsr_cli.training.dataset import PatchDataset

    pairs, _ = load_pairs(find_images(_photos(tmp_path, data_dir)), 4, 24)
    dataset = PatchDataset(pairs, 4, 24, seed=5, degradation=Degradation(sharpen_hr=True))
    clean = PatchDataset(pairs, 4, 24, seed=5)
    lr, hr = dataset[11]
    assert lr.shape == (3, 24, 24) and hr.shape == (3, 96, 96)
    assert torch.equal(lr, dataset[11][0]) and torch.equal(hr, dataset[11][1])
    assert not torch.equal(lr, clean[11][0])


def test_clean_prob_keeps_that_share_of_samples_as_the_clean_bicubic_pairs(tmp_path: Path, data_dir: Path) -> None:
    """clean_prob = 1 gives exactly the bicubic pairs (same crop and view); 0.5 a seeded mix of both kinds."""
    from jdsr_cli.training.data import find_images, load_pairs
    from jdsr_cli.training.dataset import PatchDataset

    pairs, _ = load_pairs(find_images(_photos(tmp_path, data_dir)), 2, 24)
    clean = PatchDataset(pairs, 2, 24, seed=3)
    always = PatchDataset(pairs, 2, 24, seed=3, degradation=Degradation(clean_prob=1.0))
    half = PatchDataset(pairs, 2, 24, seed=3, degradation=Degradation(clean_prob=0.5))
    assert all(torch.equal(always[i][0], clean[i][0]) and torch.equal(always[i][1], clean[i][1]) for i in range(6))
    kept = [torch.equal(half[i][0], clean[i][0]) for i in range(40)]
    assert 8 <= sum(kept) <= 32 and kept == [torch.equal(half[i][0], clean[i][0]) for i in range(40)]
    with pytest.raises(UsageError, match="clean_prob"):
        Degradation.from_table({"clean_prob": 1.5})


def test_train_with_realistic_degradation_records_it_and_resumes_exactly(tmp_path: Path, data_dir: Path) -> None:
    from jdsr_cli.cli.main import app
    from jdsr_cli.training.config import load_config
    from jdsr_cli.training.trainer import Trainer

    photos = _photos(tmp_path, data_dir)
    run = tmp_path / "run"
    args = ["train", str(photos), "-s", "2", "--arch", "edsr", "--preset", "tiny", "--degradation", "realistic",
            "--steps", "2", "--batch-size", "2", "--patch-size", "16", "--val-every", "2", "--save-every", "2",
            "--workers", "0", "--device", "cpu", "--out", str(run)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert '[degradation]\nmode = "realistic"' in (run / "config.toml").read_text()
    bad = CliRunner().invoke(app, [*args[:-1], str(tmp_path / "x"), "--degradation", "noisy"])
    assert bad.exit_code == 2 and "--degradation 'noisy': choose bicubic or realistic" in bad.output

    def config(out: Path, **kw):  # type: ignore[no-untyped-def]
        return load_config(None, dict(data=str(photos), scale=2, arch="edsr", preset="tiny", steps=4, batch_size=2,
                                      patch_size=16, val_every=2, save_every=2, out=str(out), device="cpu", workers=0,
                                      seed=3, degradation={"mode": "realistic", "jpeg_range": [40, 90]}, **kw))

    full = Trainer(config(tmp_path / "straight")).run()
    split = tmp_path / "split"
    Trainer(config(split)).run(stop_at=2)
    resumed = Trainer(config(split, resume=str(split))).run()
    assert resumed.losses == pytest.approx(full.losses[2:], rel=1e-5, abs=1e-7)
    with pytest.raises(UsageError, match="superior-LR method"):
        load_config(None, dict(data="x", method="superior-lr", degradation={"mode": "realistic"}))


def test_eval_and_downscale_share_one_seeded_realistic_lr(tmp_path: Path, data_dir: Path) -> None:
    """`jdsr downscale --method realistic` writes exactly the LR `jdsr eval --degradation realistic` scores, whose
    header names the chain's settings and seed; another seed is another LR."""
    import json

    from PIL import Image

    from jdsr_cli.cli.main import app

    runner = CliRunner()
    bird = data_dir / "benchmark" / "Set5" / "HR" / "bird.png"
    for seed in ("0", "1"):
        done = runner.invoke(app, ["downscale", str(bird), "-s", "4", "--method", "realistic", "--seed", seed,
                                   "-o", str(tmp_path / seed)])
        assert done.exit_code == 0, done.output
    first, second = (np.asarray(Image.open(tmp_path / s / "bird_down_x4.png")) for s in ("0", "1"))
    assert first.shape == (72, 72, 3) and not np.array_equal(first, second)
    report = tmp_path / "eval.json"
    scored = runner.invoke(app, ["eval", "bicubic", "-s", "4", "--data", str(data_dir), "--sets", "Set5",
                                 "--degradation", "realistic", "--json", str(report)])
    assert scored.exit_code == 0, scored.output
    assert "realistic LR, seed 0: blur σ 0.2–3.0" in scored.output and "JPEG q 30–95" in scored.output
    payload = json.loads(report.read_text())
    assert payload["degradation"] == "realistic" and payload["seed"] == 0
    bird_lr_psnr = next(i for i in payload["sets"][0]["images"] if i["name"] == "bird")["lr_psnr"]
    oracle = np.asarray(Image.open(data_dir / "benchmark" / "Set5" / "LR_bicubic" / "X4" / "birdx4.png"))
    from jdsr_cli.ops.metrics import MetricConvention

    assert bird_lr_psnr == pytest.approx(MetricConvention.standard(4).psnr(first, oracle[..., :3]), abs=1e-3)
    refused = runner.invoke(app, ["downscale", str(bird), "--width", "50", "--method", "realistic", "-o",
                                  str(tmp_path / "w")])
    assert refused.exit_code == 2 and "--method realistic shrinks by a whole factor" in refused.output
