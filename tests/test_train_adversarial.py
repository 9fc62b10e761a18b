"""``--method adversarial``: L1 + a relativistic patch discriminator (issue 29 §3's adversarial term)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from jdsr_cli.cli.main import app
from jdsr_cli.errors import UsageError
from jdsr_cli.training.config import load_config
from jdsr_cli.training.methods.adversarial import relativistic_loss
from jdsr_cli.training.methods.judges import build_judge
from jdsr_cli.training.trainer import Trainer


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    root = tmp_path_factory.mktemp("photos")
    for path in sorted((data_dir / "train" / "BSD200").glob("*.png"))[:4]:
        Image.open(path).crop((0, 0, 96, 96)).save(root / path.name)
    return root


def _config(data: Path, out: Path, **kw):  # type: ignore[no-untyped-def]
    base = dict(data=str(data), scale=2, arch="fsrcnn", method="adversarial", steps=6, batch_size=2, patch_size=16,
                val_every=3, save_every=3, log_every=1, out=str(out), device="cpu", workers=0, seed=4,
                val_fraction=0.25, method_options={"disc_width": 8, "gan_weight": 0.5})
    base.update(kw)
    return load_config(None, base)


@pytest.mark.parametrize(("arch", "norm"), [("patch", "spectral"), ("patch", "batch"), ("unet", "spectral")])
def test_the_discriminator_learns_to_tell_sharp_from_blurred(arch: str, norm: str) -> None:
    """Stepping only the discriminator on sharp (real) against box-blurred (fake) patches takes its RaGAN loss
    from log 2 (no opinion) well below it; the generator's loss on the same scores is then above log 2."""
    torch.manual_seed(0)
    disc = build_judge(arch, 8, 3, norm)
    optimizer = torch.optim.Adam(disc.parameters(), lr=1e-3, betas=(0.9, 0.99))
    real = torch.rand(8, 3, 32, 32)
    fake = torch.nn.functional.avg_pool2d(real, 5, 1, 2, count_include_pad=False)
    for _ in range(60):
        loss = relativistic_loss(disc(real), disc(fake), for_generator=False)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        d_loss = relativistic_loss(disc(real), disc(fake), for_generator=False).item()
        g_loss = relativistic_loss(disc(real), disc(fake), for_generator=True).item()
    assert d_loss < 0.5 < np.log(2) < g_loss, (d_loss, g_loss)


def test_the_adversarial_term_changes_the_networks_step(photos: Path, tmp_path: Path) -> None:
    """Same seed, data and schedule: with gan_weight 0 the run is plain L1 (the discriminator never steps); with
    it the network's weights end elsewhere and the log names the adversarial and discriminator losses."""
    plain = Trainer(_config(photos, tmp_path / "plain", method_options={"disc_width": 8, "gan_weight": 0.0}))
    plain.run()
    gan = Trainer(_config(photos, tmp_path / "gan"))
    gan.run()
    moved = [not torch.equal(a, b) for a, b in zip(plain.model.state_dict().values(),
                                                   gan.model.state_dict().values(), strict=True)]
    assert any(moved)
    records = [json.loads(line) for line in (tmp_path / "gan" / "log.jsonl").read_text().splitlines()]
    steps = [r for r in records if "loss" in r]
    assert len(steps) == 6 and all({"l1", "adv", "disc"} <= set(r) for r in steps), steps[0]


def test_during_warmup_the_network_learns_by_l1_alone_while_the_judge_trains(photos: Path, tmp_path: Path) -> None:
    """The first ``warmup`` steps move the network exactly as plain L1 does, while the discriminator already
    steps on its outputs (its weights leave their start; the log has "disc" but no "adv" until warmup ends)."""
    plain = Trainer(_config(photos, tmp_path / "plain", method_options={"disc_width": 8, "gan_weight": 0.0}))
    plain.run(stop_at=3)
    warm = Trainer(_config(photos, tmp_path / "warm", method_options={"disc_width": 8, "gan_weight": 0.5,
                                                                      "warmup": 3}))
    start = {k: v.clone() for k, v in warm.method.trainable()["discriminator"].state_dict().items()}
    warm.run()
    records = [json.loads(line) for line in (tmp_path / "warm" / "log.jsonl").read_text().splitlines()]
    steps = [r for r in records if "loss" in r]
    assert [("adv" in r, "disc" in r) for r in steps] == [(False, True)] * 3 + [(True, True)] * 3
    resumed = Trainer(_config(photos, tmp_path / "warm-split", method_options={"disc_width": 8, "gan_weight": 0.5,
                                                                              "warmup": 3}))
    resumed.run(stop_at=3)
    for key, value in plain.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[key], value, rtol=0, atol=0, msg=key)
    after = resumed.method.trainable()["discriminator"].state_dict()
    assert any(not torch.equal(after[k], start[k]) for k in start if after[k].is_floating_point())


@pytest.mark.parametrize(("arch", "norm"), [("patch", "spectral"), ("patch", "batch"), ("unet", "spectral")])
def test_resume_reproduces_the_uninterrupted_run_discriminator_included(photos: Path, tmp_path: Path,
                                                                        arch: str, norm: str) -> None:
    options = {"disc_width": 8, "gan_weight": 0.5, "disc_norm": norm, "disc_arch": arch}
    straight = Trainer(_config(photos, tmp_path / "straight", method_options=options))
    full = straight.run()
    Trainer(_config(photos, tmp_path / "split", method_options=options)).run(stop_at=3)
    resumed = Trainer(_config(photos, tmp_path / "split", resume=str(tmp_path / "split"), method_options=options))
    second = resumed.run()
    assert second.losses == pytest.approx(full.losses[3:], rel=1e-5, abs=1e-7)
    for name in ("net", "discriminator"):
        a, b = straight.method.trainable()[name].state_dict(), resumed.method.trainable()[name].state_dict()
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6, msg=f"{name}.{key}")


def test_the_checkpoint_is_an_ordinary_upscaler_and_the_cli_takes_gan_weight(photos: Path, tmp_path: Path) -> None:
    run = tmp_path / "cli"
    result = CliRunner().invoke(app, ["train", str(photos), "-s", "2", "--arch", "fsrcnn", "--method", "adversarial",
                                      "--gan-weight", "0.2", "--texture-weight", "1.5", "--steps", "2",
                                      "--patch-size", "16", "--batch-size", "2", "--precision", "fp32",
                                      "--device", "cpu", "--out", str(run)])
    assert result.exit_code == 0, result.output
    assert 'gan_weight = 0.2' in (run / "config.toml").read_text()
    assert 'texture_weight = 1.5' in (run / "config.toml").read_text()
    from safetensors.torch import load_file

    names = set(load_file(run / "last" / "model.safetensors"))
    assert names and not any("discriminator" in n or "parametrizations" in n for n in names), sorted(names)[:5]
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(tmp_path / "in.png")
    upscaled = CliRunner().invoke(app, ["upscale", str(tmp_path / "in.png"), "--model", str(run / "last"),
                                        "-o", str(tmp_path / "out.png"), "--device", "cpu"])
    assert upscaled.exit_code == 0, upscaled.output
    assert Image.open(tmp_path / "out.png").size == (40, 40)


@pytest.mark.parametrize(("options", "message"), [
    ({"gan_weight": -1.0}, r"\[adversarial\] gan_weight = -1.0: must be 0 or more"),
    ({"disc_width": 2}, r"\[adversarial\] disc_width = 2: choose 4..256"),
    ({"texture_weight": -0.5}, r"\[adversarial\] texture_weight = -0.5: must be 0 or more"),
    ({"warmup": "soon"}, r"\[adversarial\] warmup = 'soon': expected a whole number"),
    ({"disc_norm": "group"}, r"\[adversarial\] disc_norm = 'group': choose spectral or batch"),
    ({"disc_arch": "vgg"}, r"\[adversarial\] disc_arch = 'vgg': choose patch or unet"),
    ({"disc_arch": "unet", "disc_norm": "batch"}, r"\[adversarial\] disc_norm = 'batch': the unet judge is spectral"),
])
def test_bad_options_are_one_line_naming_the_key(photos: Path, tmp_path: Path, options: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        _config(photos, tmp_path / "bad", method_options=options)


def test_the_unet_judge_scores_every_pixel_and_each_score_sees_beyond_its_pixel() -> None:
    """One score per input pixel for any size (odd ones too); changing one pixel moves scores around it, not only
    its own (the down path's context)."""
    torch.manual_seed(0)
    judge = build_judge("unet", 8, 3, "spectral").eval()
    image = torch.rand(1, 3, 61, 77)
    with torch.no_grad():
        scores = judge(image)
        poked = image.clone()
        poked[..., 30, 38] += 1.0
        moved = (judge(poked) - scores).abs()[0, 0] > 1e-6
    assert scores.shape == (1, 1, 61, 77)
    assert moved[30, 38] and moved[30, 38 + 6] and moved[30 + 6, 38]
