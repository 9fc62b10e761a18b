"""Issue 30 §1: JDSR's heads and labels start from the image, the look-ahead is the target's own Adam step,
every registry architecture trains (or is refused in one line), and the smaller three (Charbonnier ε, the
generator's schedule, one training list for every variant)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from typer.testing import CliRunner

from jdsr_cli.archs import REGISTRY
from jdsr_cli.archs.registry import ArchConfig
from jdsr_cli.cli.main import app
from jdsr_cli.training.config import TrainConfig, load_config
from jdsr_cli.training.method_api import Batch
from jdsr_cli.training.trainer import Trainer
from tests.helpers.recording_context import RecordingContext


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    root = tmp_path_factory.mktemp("photos")
    for path in sorted((data_dir / "train" / "BSD200").glob("*.png"))[:6]:
        (root / path.name).write_bytes(path.read_bytes())
    return root


def _set5_crops(data_dir: Path, names: list[str], side: int = 96) -> Batch:
    """Centre crops of Set5 HR images and their ×4 bicubic LR (torch, antialiased)."""
    hrs = []
    for name in names:
        image = np.asarray(Image.open(data_dir / "benchmark" / "Set5" / "HR" / f"{name}.png").convert("RGB"))
        h, w = image.shape[:2]
        y, x = (h - side) // 2, (w - side) // 2
        hrs.append(torch.from_numpy(image[y:y + side, x:x + side].copy()).permute(2, 0, 1).float() / 255)
    hr = torch.stack(hrs)
    lr = F.interpolate(hr, scale_factor=0.25, mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)
    return Batch(lr, hr)


def _config(data: Path, out: Path, options: dict[str, Any] | None = None, **kw: Any) -> TrainConfig:
    base = dict(data=str(data), scale=2, arch="edsr", arch_kwargs={"num_feat": 16, "num_block": 4, "res_scale": 1.0},
                method="jdsr", steps=2, batch_size=2, patch_size=16, val_every=2, save_every=2, log_every=1,
                out=str(out), device="cpu", workers=0, seed=3, val_fraction=0.2, method_options=options or {})
    base.update(kw)
    return load_config(None, base)


# ---- heads and labels start from the image -------------------------------------------------------------


@pytest.mark.parametrize("arch", ["imdn", "span", "edsr", "pan"])
def test_fresh_heads_and_labels_are_the_bilinear_image_not_black(data_dir: Path, arch: str) -> None:
    """imdn ×4 (no image skip) gave label means −0.01..0.01 against an HR mean of 0.48 here; SPAN and EDSR
    (mean shift, no skip) gave the dataset mean; PAN (its own ILR) already started from the image."""
    from jdsr_cli.training.methods.jdsr.networks import SectionedTarget, as_trace, label_generator

    torch.manual_seed(0)
    batch = _set5_crops(data_dir, ["baby", "bird"])
    net = REGISTRY.build(ArchConfig(arch, 4, REGISTRY.get(arch).preset_kwargs(
        {"imdn": "default", "span": "small", "edsr": "baseline", "pan": "small"}[arch])))
    target, generator = SectionedTarget(net, 4), label_generator(net, 4)
    with torch.no_grad():
        parts = target(batch.lr)
        labels = generator(as_trace(parts, detach=True))
    bilinear = F.interpolate(batch.lr, scale_factor=4, mode="bilinear", align_corners=False)
    hr_mean = float(batch.hr.mean())

    def psnr(image: torch.Tensor) -> float:
        return float(10 * torch.log10(1 / F.mse_loss(image.clamp(0, 1), batch.hr)))

    for image in (*parts[0][:-1], *labels):
        assert float(image.mean()) == pytest.approx(hr_mean, abs=0.01)
        assert psnr(image) == pytest.approx(psnr(bilinear), abs=0.1)  # the image, not image + a random residual
    assert len(labels) == 3


def test_the_deployed_network_is_unchanged_by_the_image_base() -> None:
    """The base lives in the training-only wrapper: net(x) is the plain architecture's output."""
    from jdsr_cli.training.methods.jdsr.networks import SectionedTarget

    torch.manual_seed(0)
    net = REGISTRY.build(ArchConfig("imdn", 2, {"nf": 16, "num_modules": 6}))
    x = torch.rand(1, 3, 12, 12)
    with torch.no_grad():
        plain = net(x)
        outputs = SectionedTarget(net, 4)(x)[0]
    torch.testing.assert_close(outputs[-1], plain)


# ---- the look-ahead is the target's own optimizer step ------------------------------------------------


def test_the_adam_look_ahead_is_the_step_the_optimizer_takes() -> None:
    """θ + move(g) equals what Adam.step() does with the same gradients, at the first step and later."""
    from jdsr_cli.training.methods.jdsr.meta import AdamLookAhead

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Conv2d(8, 3, 1))
    params = list(net.parameters())
    optimizer = torch.optim.Adam(params, lr=5e-4, betas=(0.9, 0.99))
    for step in range(3):
        x = torch.rand(2, 3, 8, 8)
        grads = torch.autograd.grad(net(x).square().mean(), params)
        move = AdamLookAhead(optimizer).move(params, grads)
        before = [p.detach().clone() for p in params]
        for p, g in zip(params, grads, strict=True):
            p.grad = g.clone()
        optimizer.step()
        for b, d, p in zip(before, move, params, strict=True):
            torch.testing.assert_close(b + d, p.detach(), rtol=1e-5, atol=1e-9), step
        scale = torch.cat([d.abs().flatten() for d in move]).median()
        assert 1e-5 < float(scale) <= 5e-4 * 1.01  # Adam's step: about lr per weight, whatever |g| is


def test_the_meta_gradient_through_adams_step_is_not_noise_sized(data_dir: Path) -> None:
    """imdn ×4 at lr 5e-4 after two real steps: through the SGD look-ahead (α = lr) the generator's meta
    gradient is ~1e-8 (under Adam's ε); through the target's own Adam step it is ~100× larger, and the
    simulated move of θ is Adam's (~lr per weight), not α·g (~1e-9)."""
    from jdsr_cli.training.methods.jdsr.meta import AdamLookAhead, SgdLookAhead, meta_step
    from jdsr_cli.training.methods.jdsr.networks import SectionedTarget, label_generator
    from jdsr_cli.training.methods.jdsr.options import label_distance

    torch.manual_seed(0)
    batch, meta = _set5_crops(data_dir, ["baby", "bird"]), _set5_crops(data_dir, ["butterfly", "head"])
    net = REGISTRY.build(ArchConfig("imdn", 4, {"nf": 32, "num_modules": 6}))
    target, generator = SectionedTarget(net, 4), label_generator(net, 4)
    optimizer = torch.optim.Adam(target.parameters(), lr=5e-4, betas=(0.9, 0.99))
    for _ in range(2):
        optimizer.zero_grad()
        sum(F.l1_loss(o, batch.hr) for o in target(batch.lr)[0]).backward()  # type: ignore[union-attr]
        optimizer.step()

    def label(outputs, labels, hr):  # type: ignore[no-untyped-def]
        return sum(label_distance("charbonnier", o, y) for o, y in zip(outputs[:-1], labels, strict=True))

    def inner(outputs, labels, hr):  # type: ignore[no-untyped-def]
        return sum(F.l1_loss(o, hr) for o in outputs) + label(outputs, labels, hr)

    scales = {}
    for name, look_ahead in (("sgd", SgdLookAhead(5e-4)), ("adam", AdamLookAhead(optimizer))):
        ctx = RecordingContext()
        meta_step(target, generator, batch, meta, inner, label, look_ahead, "second", ctx)  # type: ignore[arg-type]
        scales[name] = float(ctx.flat().abs().max())
    assert scales["adam"] > 30 * scales["sgd"] and scales["adam"] > 1e-6, scales
    theta = [p for p in net.parameters()]
    grads = torch.autograd.grad(inner(target(batch.lr)[0], [o.detach() for o in target(batch.lr)[0][:-1]],
                                      batch.hr), theta)
    adam_move = torch.cat([d.abs().flatten() for d in AdamLookAhead(optimizer).move(theta, grads)]).median()
    sgd_move = torch.cat([d.abs().flatten() for d in SgdLookAhead(5e-4).move(theta, grads)]).median()
    assert float(adam_move) > 1e-5 and float(adam_move) > 100 * float(sgd_move)


# ---- every architecture trains with --method jdsr ----------------------------------------------------

SMALL = {
    "imdn": {"nf": 16, "num_modules": 6},
    "pan": {"nf": 8, "unf": 8, "nb": 8},
    "rcan": {"num_group": 4, "num_block": 1, "num_feat": 16, "reduction": 4},
    "edsr": {"num_feat": 16, "num_block": 4, "res_scale": 1.0},
    "fsrcnn": {"d": 16, "s": 8, "m": 4},
    "span": {"feature_channels": 8},
    "srvgg": {"num_feat": 8, "num_conv": 4},
    "rrdbnet": {"num_feat": 8, "num_block": 4, "num_grow_ch": 4},
}


def test_the_small_builds_cover_every_upscaler_in_the_registry() -> None:
    assert set(SMALL) == {name for name in REGISTRY.names() if REGISTRY.get(name).direction == "up"}


@pytest.mark.parametrize("arch", sorted(SMALL))
def test_every_registry_upscaler_trains_two_jdsr_steps(photos: Path, tmp_path: Path, arch: str) -> None:
    """SPAN crashed here ('One of the differentiated Tensors does not require grad': its derived eval_conv)."""
    scale = 4 if arch == "rrdbnet" else 2  # RRDBNet ×2 is refused (below)
    trainer = Trainer(_config(photos, tmp_path / "run", {"mutual": False}, arch=arch, arch_kwargs=SMALL[arch],
                              scale=scale))
    result = trainer.run()
    assert len(result.losses) == 2 and all(math.isfinite(loss) for loss in result.losses)


def test_span_with_the_meta_step_on_the_command_line(photos: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["train", str(photos), "-s", "4", "--arch", "span", "--preset", "small",
                                      "--method", "jdsr", "--steps", "2", "--batch-size", "2", "--patch-size", "8",
                                      "--val-every", "2", "--save-every", "2", "--workers", "0", "--device", "cpu",
                                      "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("arch, preset, scale, message", [
    ("fsrcnn", "fsrcnn-s", "2", "sections = 4: FSRCNN has only 1 body blocks to split"),
    ("rrdbnet", "anime-6b", "2", "RRDBNet ×2 cannot be sectioned, its body runs at 8×8 for a 16×16 input"),
])
def test_what_jdsr_cannot_section_is_refused_in_one_line(photos: Path, tmp_path: Path, arch: str, preset: str,
                                                         scale: str, message: str) -> None:
    result = CliRunner().invoke(app, ["train", str(photos), "-s", scale, "--arch", arch, "--preset", preset,
                                      "--method", "jdsr", "--steps", "2", "--device", "cpu",
                                      "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.output


# ---- the smaller three --------------------------------------------------------------------------------


def test_the_label_distance_has_curvature_across_typical_head_label_gaps() -> None:
    """The meta gradient is proportional to the label distance's curvature at out − y; with ε = 0.01 it fell
    to 3 % of its peak at a gap of 0.03 (≈ 8 grey levels); the default keeps it above a third."""
    from jdsr_cli.training.methods.jdsr.options import CHARBONNIER_EPS, label_distance

    def curvature(gap: float) -> float:
        d = torch.tensor(gap, dtype=torch.float64, requires_grad=True)
        (first,) = torch.autograd.grad(label_distance("charbonnier", d.view(1), torch.zeros(1, dtype=torch.float64)),
                                       d, create_graph=True)
        return float(torch.autograd.grad(first, d)[0])

    assert curvature(0.03) > curvature(0.0) / 3
    assert CHARBONNIER_EPS >= 0.03


def test_the_generators_schedule_follows_the_runs_steps(photos: Path, tmp_path: Path) -> None:
    """With a meta step every 2nd step the generator's cosine schedule still reaches the run's end."""
    trainer = Trainer(_config(photos, tmp_path / "run", {"mutual": False, "meta_every": 2}, steps=4, lr=1e-3))
    trainer.run()
    target, generator = (trainer.method.optimizers()[name].param_groups[0]["lr"] for name in ("target", "generator"))
    assert generator / trainer.method.opts.meta_lr == pytest.approx(target / 1e-3)


def test_every_variant_trains_on_the_same_images(photos: Path, tmp_path: Path) -> None:
    """The plain control (self-distillation and mutual learning off) trains on the list full JDSR trains on."""
    from jdsr_cli.training.dataset import build_data
    from jdsr_cli.training.methods import build_method

    lists = []
    for options in ({}, {"self_distill": False, "mutual": False}, {"meta": False, "gap_threshold": "none"}):
        config = _config(photos, tmp_path / "x", options)
        pairs, _, _ = build_data(config)
        kept = build_method(config).training_pairs(pairs)
        assert 0 < len(kept) < len(pairs)
        lists.append([next(i for i, p in enumerate(pairs) if p is k) for k in kept])
    assert lists[0] == lists[1] == lists[2]
