"""``--method jdsr``: the plain backbone it exports, every switch, the meta step's gradient, the curriculum,
the gap gate, exact resume, bf16, the CLI and two-process DDP."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from jdsr_cli.cli.main import app
from jdsr_cli.errors import UsageError
from jdsr_cli.training.config import TrainConfig, load_config
from jdsr_cli.training.method_api import Batch
from jdsr_cli.training.trainer import Trainer
from tests.helpers.recording_context import RecordingContext

SMALL_EDSR = {"num_feat": 16, "num_block": 4, "res_scale": 1.0}


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    root = tmp_path_factory.mktemp("photos")
    for path in sorted((data_dir / "train" / "BSD200").glob("*.png"))[:6]:
        (root / path.name).write_bytes(path.read_bytes())
    return root


def _config(data: Path, out: Path, options: dict[str, Any] | None = None, **kw: Any) -> TrainConfig:
    base = dict(data=str(data), scale=2, arch="edsr", arch_kwargs=SMALL_EDSR, method="jdsr", steps=4,
                batch_size=2, patch_size=16, val_every=2, save_every=2, log_every=1, out=str(out), device="cpu",
                workers=0, seed=3, val_fraction=0.2, method_options=options or {})
    base.update(kw)
    return load_config(None, base)


def _log(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("arch, kwargs", [("imdn", {"nf": 16, "num_modules": 6}), ("pan", {"nf": 8, "unf": 8, "nb": 8}),
                                          ("edsr", SMALL_EDSR)])
def test_the_checkpoint_is_the_plain_backbone(photos: Path, tmp_path: Path, arch: str, kwargs: dict) -> None:
    """Same tensors, parameter count and output as the architecture a plain run trains; the heads, the
    generator and the peer live only in the resume state, the frozen encoder nowhere."""
    from jdsr_cli.archs import REGISTRY
    from jdsr_cli.archs.registry import ArchConfig
    from jdsr_cli.checkpoints.resolve import resolve_model

    run = tmp_path / "run"
    trainer = Trainer(_config(photos, run, arch=arch, arch_kwargs=kwargs, steps=2))
    trainer.run()
    loaded = resolve_model(str(run / "last"), scale=None)
    plain = REGISTRY.build(ArchConfig(arch, 2, kwargs)).state_dict()
    saved = loaded.model.state_dict()
    assert {k: v.shape for k, v in saved.items()} == {k: v.shape for k, v in plain.items()}
    assert sum(p.numel() for p in loaded.model.parameters()) == sum(v.numel() for v in plain.values())
    x = torch.rand(1, 3, 12, 12)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), trainer.method.net(x), rtol=1e-5, atol=1e-6)
    state = torch.load(run / "last" / "training_state.pt", weights_only=True)
    assert set(state["trainable"]) == {"target", "generator", "peer"}
    assert set(state["optimizers"]) == {"target", "generator", "peer"}
    assert any(k.startswith("heads.") for k in state["trainable"]["target"])
    encoder = trainer.method.frozen()["encoder"]
    assert not any(p.requires_grad for p in encoder.parameters())
    assert sum(len(part) for part in state["trainable"].values()) == sum(
        len(net.state_dict()) for net in trainer.method.trainable().values())  # the encoder is not among them


SWITCHES = {
    "full": ({}, {"l1", "sections", "labels", "meta", "ml", "peer_l1", "peer_ml", "gap", "peer_paused"}, {"generator"}),
    "no-self-distill": ({"self_distill": False}, {"l1", "ml", "peer_l1"}, {"sections", "labels", "meta", "generator"}),
    "no-meta": ({"meta": False}, {"sections", "labels", "generator", "ml"}, {"meta"}),
    "no-mutual": ({"mutual": False}, {"sections", "labels", "meta"}, {"ml", "peer_l1", "gap", "ml_w"}),
    "no-gate": ({"gap_threshold": "none"}, {"ml", "peer_l1"}, {"gap", "peer_paused"}),
    "first-order": ({"meta_order": "finite-difference", "meta_every": 2}, {"meta", "labels"}, {"generator"}),
    "plain": ({"self_distill": False, "mutual": False}, {"l1"}, {"sections", "ml", "meta", "peer_l1"}),
}


@pytest.mark.parametrize("switch", SWITCHES)
def test_every_switch_runs_and_logs_its_own_terms(photos: Path, tmp_path: Path, switch: str) -> None:
    options, present, absent = SWITCHES[switch]
    trainer = Trainer(_config(photos, tmp_path / "run", options, steps=2))
    trainer.run()
    steps = [r for r in _log(tmp_path / "run") if "loss" in r]
    assert [r["step"] for r in steps] == [1, 2]
    keys = set(steps[0])
    assert present <= keys and not absent & keys, (present - keys, absent & keys)
    assert all(math.isfinite(v) for r in steps for v in r.values() if isinstance(v, float))
    if switch == "plain":
        assert set(trainer.method.trainable()) == {"target"} and not trainer.method.frozen()
    if switch == "first-order":  # a meta step every 2nd step: steps 0 (logged at 1) only
        assert "meta" in steps[0] and "meta" not in steps[1]


def _meta_gradients(label_loss: str) -> dict[str, torch.Tensor]:
    """d L_meta(θ − α ∇θ L_inner(θ, φ)) / dφ computed through the look-ahead (autograd, second order) and by
    DARTS' central difference, in float64."""
    from jdsr_cli.archs import REGISTRY
    from jdsr_cli.archs.registry import ArchConfig
    from jdsr_cli.training.methods.jdsr.meta import meta_step
    from jdsr_cli.training.methods.jdsr.networks import SectionedTarget, label_generator
    from jdsr_cli.training.methods.jdsr.options import label_distance

    torch.manual_seed(0)
    net = REGISTRY.build(ArchConfig("edsr", 2, SMALL_EDSR)).double()
    target = SectionedTarget(net, 4).double()
    generator = label_generator(net, 4).double()
    batch = Batch(torch.rand(2, 3, 10, 10, dtype=torch.float64), torch.rand(2, 3, 20, 20, dtype=torch.float64))
    meta = Batch(torch.rand(2, 3, 10, 10, dtype=torch.float64), torch.rand(2, 3, 20, 20, dtype=torch.float64))

    def l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a - b).abs().mean()

    def label(outputs, labels, hr):  # type: ignore[no-untyped-def]
        return sum(label_distance(label_loss, o, y).double() for o, y in zip(outputs[:-1], labels, strict=True))

    def inner(outputs, labels, hr):  # type: ignore[no-untyped-def]
        return l1(outputs[-1], hr) + sum(l1(o, hr) for o in outputs[:-1]) + label(outputs, labels, hr)

    grads = {}
    for order in ("second", "finite-difference"):
        ctx = RecordingContext()
        meta_step(target, generator, batch, meta, inner, label, 0.5, order, ctx)  # type: ignore[arg-type]
        grads[order] = torch.cat([g.flatten() for g in ctx.gradients])
    return grads


def test_the_second_order_meta_gradient_agrees_with_its_finite_difference_approximation() -> None:
    grads = _meta_gradients("charbonnier")
    exact, approx = grads["second"], grads["finite-difference"]
    assert exact.norm() > 0
    cosine = torch.dot(exact, approx) / (exact.norm() * approx.norm())
    assert cosine > 0.999 and (exact - approx).norm() < 0.05 * exact.norm()


def test_an_l1_label_loss_gives_the_generator_no_meta_gradient() -> None:
    """Why ``label_loss`` defaults to Charbonnier: the look-ahead step of an L1 term depends on the labels only
    through sign(out − y), whose derivative is zero, so the exact meta gradient vanishes."""
    assert _meta_gradients("l1")["second"].norm() == 0


def test_curriculum_weight_is_the_gaussian_ramp_up() -> None:
    from jdsr_cli.training.methods.jdsr.options import curriculum_weight

    assert curriculum_weight(0, 1000, 0.5) == pytest.approx(0.607, abs=1e-3)  # the port's weak ramp
    assert curriculum_weight(500, 1000, 0.5) == pytest.approx(0.883, abs=1e-3)
    assert curriculum_weight(0, 1000, 5.0) == pytest.approx(0.0067, abs=1e-4)  # the usual one
    assert curriculum_weight(500, 1000, 5.0) == pytest.approx(0.287, abs=1e-3)
    assert curriculum_weight(1000, 1000, 5.0) == curriculum_weight(5000, 1000, 5.0) == 1.0


def test_the_gap_gate_pauses_the_peer_and_only_the_peer(photos: Path, tmp_path: Path) -> None:
    trainer = Trainer(_config(photos, tmp_path / "run", {"gap_every": 1000, "gap_threshold": 1.0}))
    trainer.prepare()
    method = trainer.method
    batch = Batch(*(t.to(trainer.device) for t in trainer.dataset[0]))
    batch = Batch(batch.lr[None].repeat(2, 1, 1, 1), batch.hr[None].repeat(2, 1, 1, 1))
    method.train_step(batch, 0, trainer.ctx)  # step 0 measures the gap
    gap = method.gap
    assert gap["peer_paused"] == float(gap["gap"] > 1.0)
    assert gap["gap"] == pytest.approx(gap["peer_psnr"] - gap["target_psnr"], abs=1e-4)

    def snapshot(module: torch.nn.Module) -> list[torch.Tensor]:
        return [p.detach().clone() for p in module.parameters()]

    for paused in (1.0, 0.0):
        method.gap = {**gap, "peer_paused": paused}
        peer, target = snapshot(method.peer), snapshot(method.net)
        losses = method.train_step(batch, 1, trainer.ctx)
        peer_moved = any(not torch.equal(a, b) for a, b in zip(peer, method.peer.parameters(), strict=True))
        assert any(not torch.equal(a, b) for a, b in zip(target, method.net.parameters(), strict=True))
        assert peer_moved == (not paused) and losses["peer_learns"] == 1 - paused


def test_resume_reproduces_the_uninterrupted_jdsr_run(photos: Path, tmp_path: Path) -> None:
    """Meta batches, the gap gate's state, three optimizers and EMA all continue exactly."""
    options = {"gap_every": 3, "meta_every": 1}
    straight = Trainer(_config(photos, tmp_path / "straight", options, ema_decay=0.9, steps=5))
    full = straight.run()
    run = tmp_path / "split"
    Trainer(_config(photos, run, options, ema_decay=0.9, steps=5)).run(stop_at=4)
    resumed = Trainer(_config(photos, run, options, ema_decay=0.9, steps=5, resume=str(run)))
    assert resumed.run().losses == pytest.approx(full.losses[4:], rel=1e-5, abs=1e-7)
    for name, module in straight.method.trainable().items():
        for a, b in zip(module.state_dict().values(), resumed.method.trainable()[name].state_dict().values(),
                        strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert resumed.method.gap == pytest.approx(straight.method.gap)


def test_bf16_jdsr_learns_and_keeps_fp32_weights(photos: Path, tmp_path: Path) -> None:
    trainer = Trainer(_config(photos, tmp_path / "run", precision="bf16", steps=3, val_every=3, save_every=3))
    result = trainer.run()
    assert all(math.isfinite(loss) for loss in result.losses)
    assert all(p.dtype == torch.float32 for net in trainer.method.trainable().values() for p in net.parameters())


def test_options_are_checked_in_one_place(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"\[jdsr\] meta_order = 'third': choose second or finite-difference"):
        load_config(None, {"data": "x", "method": "jdsr", "method_options": {"meta_order": "third"}})
    with pytest.raises(UsageError, match=r"\[jdsr\] ml_weight = 'big': expected a number"):
        load_config(None, {"data": "x", "method": "jdsr", "method_options": {"ml_weight": "big"}})
    with pytest.raises(UsageError, match=r"\[jdsr\] sections must be at least 2"):
        load_config(None, {"data": "x", "method": "jdsr", "method_options": {"sections": 1}})
    toml = tmp_path / "c.toml"
    toml.write_text('data = "x"\nmethod = "jdsr"\n[jdsr]\ngap_threshold = "none"\ncurriculum_k = 0.5\n')
    config = load_config(toml, {"method_options": {"meta": False}})
    assert config.method_options == {"gap_threshold": "none", "curriculum_k": 0.5, "meta": False}


def test_cli_switches_reach_the_run_and_a_resume_keeps_the_structure(photos: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    run = tmp_path / "run"
    args = ["train", str(photos), "-s", "2", "--method", "jdsr", "--arch", "imdn",
            "--steps", "2", "--batch-size", "2", "--patch-size", "16", "--val-every", "2", "--save-every", "2",
            "--workers", "0", "--device", "cpu", "--out", str(run)]
    ok = runner.invoke(app, [*args, "--no-meta", "--no-curriculum", "--gap-threshold", "none", "--ml-weight",
                             "0.1"])
    assert ok.exit_code == 0, ok.output
    table = (run / "config.toml").read_text().split("[jdsr]")[1]
    assert "meta = false" in table and 'gap_threshold = "none"' in table and "ml_weight = 0.1" in table
    assert "(JDSR: self-distillation + mutual)" in ok.output
    refused = runner.invoke(app, ["train", "--resume", str(run), "--steps", "3", "--meta"])
    assert refused.exit_code == 2 and "[jdsr] meta true" in refused.output and "cannot change" in refused.output
    more = runner.invoke(app, ["train", "--resume", str(run), "--steps", "3", "--ml-weight", "0.2"])
    assert more.exit_code == 0, more.output
    other = runner.invoke(app, ["train", str(photos), "-s", "2", "--no-mutual", "--out", str(tmp_path / "x")])
    assert other.exit_code == 2 and "--no-mutual: an option of --method jdsr; this run's method is supervised" \
        in other.output
    taught = runner.invoke(app, [*args[:-1], str(tmp_path / "t"), "--teacher", "imdn-x2", "--kd-loss", "srkd"])
    assert taught.exit_code == 0 and "+ srkd from imdn-x2" in taught.output, taught.output
    bad = runner.invoke(app, [*args[:-1], str(tmp_path / "y"), "--gap-threshold", "lots"])
    assert bad.exit_code == 2 and "--gap-threshold 'lots': a number of dB or none" in bad.output


@pytest.mark.parametrize("kd_loss", ["fitnet", "fakd"])
def test_jdsr_with_a_teacher_adds_the_offline_terms_and_keeps_the_teacher_frozen(photos: Path, tmp_path: Path,
                                                                                kd_loss: str) -> None:
    """JDSR + an offline method (issue 15): the target's loss gains output KD and the feature term, whose
    adapters train with the target and resume exactly; the teacher never moves and is recorded."""
    options = {"teachers": ["imdn-x2"], "kd_loss": kd_loss, "meta_every": 2}
    straight = Trainer(_config(photos, tmp_path / "straight", options, steps=4))
    teacher = straight.method.teachers[0]
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    full = straight.run()
    assert all(torch.equal(v, teacher.state_dict()[k]) for k, v in before.items())
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    assert set(straight.method.frozen()) == {"encoder", "teacher0"}
    has_adapters = kd_loss == "fitnet"
    assert ("kd_term" in straight.method.trainable()) == has_adapters
    logged = {k for row in _log(tmp_path / "straight") for k in row}
    assert {"kd", "feat", "labels", "ml"} <= logged
    run = tmp_path / "split"
    Trainer(_config(photos, run, options, steps=4)).run(stop_at=2)
    resumed = Trainer(_config(photos, run, options, steps=4, resume=str(run)))
    assert resumed.run().losses == pytest.approx(full.losses[2:], rel=1e-5, abs=1e-7)
    training = json.loads((run / "last" / "config.json").read_text())["training"]
    assert [t["name"] for t in training["teachers"]] == ["imdn-x2"]
    assert "+ " + kd_loss + " from imdn-x2" in straight.method.describe()


def test_jdsr_teacher_options_are_checked(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"\[jdsr\] kd_loss = 'pisr': choose output or fitnet or fakd"):
        load_config(None, {"data": "x", "method": "jdsr", "method_options": {"kd_loss": "pisr"}})
    with pytest.raises(UsageError, match=r"\[jdsr\] teachers = 'imdn-x2': expected a list of strings"):
        load_config(None, {"data": "x", "method": "jdsr", "method_options": {"teachers": "imdn-x2"}})


@pytest.mark.slow
def test_two_process_gloo_jdsr_equals_one_process_with_twice_the_batch(photos: Path, tmp_path: Path) -> None:
    """The look-ahead gradient is averaged over the ranks, so even the meta step matches one process."""
    from safetensors.torch import load_file

    args = ["train", str(photos), "-s", "2", "--method", "jdsr", "--arch", "edsr", "--preset", "tiny",
            "--steps", "3", "--patch-size", "16", "--val-every", "3", "--save-every", "3", "--workers", "0",
            "--device", "cpu", "--seed", "5"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    config = tmp_path / "jdsr.toml"
    config.write_text("[jdsr]\nsections = 2\ngap_every = 1\n")
    ddp = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1", "--nproc_per_node", "2",
         "-m", "jdsr_cli", *args, "--config", str(config), "--batch-size", "2", "--out", str(tmp_path / "ddp")],
        capture_output=True, text=True, timeout=600, env=env,
    )
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    single = subprocess.run([sys.executable, "-m", "jdsr_cli", *args, "--config", str(config), "--batch-size", "4",
                             "--out", str(tmp_path / "one")], capture_output=True, text=True, timeout=600, env=env)
    assert single.returncode == 0, single.stderr[-3000:]
    a = load_file(tmp_path / "ddp" / "last" / "model.safetensors")
    b = load_file(tmp_path / "one" / "last" / "model.safetensors")
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5)
    states = [torch.load(tmp_path / run / "last" / "training_state.pt", weights_only=True) for run in ("ddp", "one")]
    for part in ("generator", "peer"):
        for key, value in states[0]["trainable"][part].items():
            torch.testing.assert_close(value, states[1]["trainable"][part][key], rtol=1e-4, atol=1e-5)
