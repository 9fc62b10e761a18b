"""``jdsr distill``: every loss end to end from the CLI, frozen teachers, non-zero feature gradients, FAKD's
chunked affinity against the plain one, teachers recorded, exact resume, refusals and two-process DDP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from jdsr_cli.cli.main import app
from jdsr_cli.training.config import TrainConfig, load_config
from jdsr_cli.training.methods.distill import terms
from jdsr_cli.training.methods.distill.options import LOSSES
from jdsr_cli.training.trainer import Trainer

SMALL_PAN = {"nf": 8, "unf": 8, "nb": 6}
TEACHER = "imdn-x2"
PRIVILEGED = "slr-up-x2"  # PISR's teacher: a superior-LR pair (its encoder comes along)


def teacher_for(loss: str) -> str:
    return PRIVILEGED if loss == "pisr" else TEACHER


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    root = tmp_path_factory.mktemp("photos")
    for path in sorted((data_dir / "train" / "BSD200").glob("*.png"))[:5]:
        (root / path.name).write_bytes(path.read_bytes())
    return root


def _config(data: Path, out: Path, loss: str, **kw: Any) -> TrainConfig:
    options = {"loss": loss, "teachers": [teacher_for(loss)], **kw.pop("options", {})}
    base = dict(data=str(data), scale=2, arch="pan", arch_kwargs=SMALL_PAN, method="distill", steps=4, batch_size=2,
                patch_size=16, val_every=2, save_every=2, log_every=1, out=str(out), device="cpu", workers=0, seed=3,
                val_fraction=0.3, method_options=options)
    base.update(kw)
    return load_config(None, base)


@pytest.mark.parametrize("loss", list(LOSSES))
def test_every_loss_runs_from_the_cli_and_writes_a_plain_student(photos: Path, tmp_path: Path, loss: str) -> None:
    from jdsr_cli.checkpoints.resolve import resolve_model

    config = tmp_path / "student.toml"
    config.write_text("arch = \"pan\"\narch_kwargs = { nf = 8, unf = 8, nb = 6 }\n")
    run = tmp_path / "run"
    result = CliRunner().invoke(app, [
        "distill", str(photos), "-s", "2", "--teacher", teacher_for(loss), "--method", loss, "--config", str(config),
        "--steps", "2", "--batch-size", "2", "--patch-size", "16", "--val-every", "2", "--save-every", "2",
        "--workers", "0", "--device", "cpu", "--out", str(run)])
    assert result.exit_code == 0, result.output
    online = loss in ("dml", "afd")
    teacher = "slr-up-x2" if loss == "pisr" else TEACHER
    assert (f"with peers like {teacher} ({loss}" if online else f"from {teacher} ({loss})") in result.output
    loaded = resolve_model(str(run / "best"), scale=None)
    assert (loaded.config.arch, loaded.config.kwargs) == ("pan", SMALL_PAN)
    training = json.loads((run / "best" / "config.json").read_text())["training"]
    assert training["method"] == "distill" and [t["name"] for t in training["teachers"]] == [teacher]
    assert training["teachers"][0]["weights_sha256"]
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if '"loss"' in line]
    assert ("feat" in records[0]) == (loss != "output" and not online)
    assert ("kd" in records[0]) == (not online and loss != "pisr") and ("peer0_mutual" in records[0]) == online
    assert ("disc" in records[0]) == (loss == "afd")


def test_cli_help_names_every_loss_and_marks_the_reconstructions() -> None:
    from jdsr_cli.cli.distill_cmd import KD_LOSS_HELP

    for name, (_, rebuilt, _) in LOSSES.items():
        entry = next(part for part in KD_LOSS_HELP.split("; ") if part.startswith(f"{name}:"))
        assert entry.endswith("[reconstruction]") == rebuilt, entry


def test_teachers_are_frozen_outside_state_ema_and_optimizers(photos: Path, tmp_path: Path) -> None:
    trainer = Trainer(_config(photos, tmp_path / "run", "fitnet", ema_decay=0.9))
    teacher = trainer.method.teachers[0]
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    trainer.run()
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    for key, value in teacher.state_dict().items():
        torch.testing.assert_close(value, before[key], rtol=0, atol=0)
    teacher_ids = {id(p) for p in teacher.parameters()}
    for optimizer in trainer.method.optimizers().values():
        assert not teacher_ids & {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert trainer.ema is not None and len(trainer.ema.state_dict()) == len(trainer.method.net.state_dict())
    state = torch.load(tmp_path / "run" / "last" / "training_state.pt", weights_only=True)
    assert set(state["trainable"]) == {"student"}
    assert any(k.startswith("term.") for k in state["trainable"]["student"])  # the regressors resume too


@pytest.mark.parametrize("loss", [name for name in LOSSES if name not in ("output", "dml", "afd")])
def test_every_feature_term_gives_the_student_non_zero_gradients(photos: Path, tmp_path: Path, loss: str) -> None:
    """The feature term alone must reach the student's body (a detached term would silently be output KD)."""
    from jdsr_cli.archs.taps import capture_features

    method = Trainer(_config(photos, tmp_path / "run", loss)).method
    lr = torch.rand(2, 3, 12, 12)
    with torch.no_grad(), capture_features(method.teachers[0], method.teacher_taps[0]) as captured:
        method.teachers[0](lr)
    _, feature_loss = method.student(lr, [[captured[t] for t in method.teacher_taps[0]]])
    feature_loss.backward()
    first_block = dict(method.net.named_parameters())["conv_first.weight"]
    assert first_block.grad is not None and first_block.grad.abs().sum() > 0


def test_dml_peers_learn_along_and_only_the_student_is_exported(photos: Path, tmp_path: Path) -> None:
    from jdsr_cli.checkpoints.resolve import resolve_model

    trainer = Trainer(_config(photos, tmp_path / "run", "dml", steps=2, val_every=2, save_every=2))
    peer = trainer.method.peers[0]
    before = [p.detach().clone() for p in peer.parameters()]
    trainer.run()
    assert not trainer.method.frozen() and any(p.requires_grad for p in peer.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, peer.parameters(), strict=True))
    state = torch.load(tmp_path / "run" / "last" / "training_state.pt", weights_only=True)
    assert set(state["trainable"]) == {"student", "peer0"} and set(state["optimizers"]) == {"main", "peer0"}
    assert resolve_model(str(tmp_path / "run" / "last"), scale=None).config.arch == "pan"


def test_afd_steps_never_move_the_other_side(photos: Path, tmp_path: Path) -> None:
    """The networks' adversarial steps leave the discriminators unchanged, and the discriminators' step leaves
    every network (and transform) unchanged."""
    trainer = Trainer(_config(photos, tmp_path / "run", "afd", steps=2, val_every=2, save_every=2))
    method, ctx = trainer.method, trainer.ctx
    step = ctx.step_with_gradients
    checked: list[str] = []

    def snapshot(modules: list[torch.nn.Module]) -> list[torch.Tensor]:
        return [p.detach().clone() for m in modules for p in m.parameters()]

    def spy(name: str, grads, loss) -> None:  # type: ignore[no-untyped-def]
        other = [method.net, *method.peers, method.transforms] if name == "discriminators" else [method.discriminators]
        before = snapshot(other)
        step(name, grads, loss)
        assert all(torch.equal(a, b) for a, b in zip(before, snapshot(other), strict=True)), name
        checked.append(name)

    ctx.step_with_gradients = spy  # type: ignore[method-assign]
    trainer.run()
    assert checked == ["main_adv", "peer0_adv", "discriminators"] * 2
    # every rate decays with the run's schedule (a constant adversarial rate outlived the L1 one and diverged)
    assert set(method.schedulers()) == set(method.optimizers())
    for name, optimizer in method.optimizers().items():
        assert optimizer.param_groups[0]["lr"] < optimizer.defaults["lr"], name


def test_pisr_teacher_sees_the_superior_lr_and_can_seed_the_student(photos: Path, tmp_path: Path) -> None:
    """PISR's teacher decoder runs on its encoder's output of the HR patch; --init-from-teacher copies the whole
    decoder into a student of the same architecture."""
    from jdsr_cli.checkpoints.resolve import resolve_model

    trainer = Trainer(_config(photos, tmp_path / "run", "pisr", arch="edsr", arch_kwargs={}, preset="slr-decoder",
                              options={"init_from_teacher": True}))
    decoder = resolve_model(PRIVILEGED, scale=2).model
    for key, value in decoder.state_dict().items():
        torch.testing.assert_close(trainer.method.net.state_dict()[key], value, rtol=0, atol=0)
    assert set(trainer.method.frozen()) == {"encoder", "teacher0"}
    seen: list[torch.Tensor] = []
    encoder = trainer.method.encoder
    encoder.register_forward_hook(lambda _m, _i, out: seen.append(out))
    trainer.run(stop_at=1)
    assert len(seen) == 1 and seen[0].shape[-1] == trainer.config.patch_size  # the superior LR of the HR patch
    refused = CliRunner().invoke(app, ["distill", str(photos), "-s", "2", "--teacher", TEACHER, "--student-arch",
                                       "pan", "--method", "pisr", "--out", str(tmp_path / "x")])
    assert refused.exit_code == 2 and "PISR needs a superior-LR pair" in refused.output


def test_chunked_affinity_equals_the_whole_matrix_and_ignores_channels_and_scale() -> None:
    torch.manual_seed(0)
    s = torch.randn(2, 8, 6, 5, dtype=torch.float64, requires_grad=True)
    t = torch.randn(2, 16, 6, 5, dtype=torch.float64)

    def whole(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        fa, fb = terms._unit_columns(a), terms._unit_columns(b)
        return (fa.transpose(1, 2) @ fa - fb.transpose(1, 2) @ fb).abs().mean()

    expected = whole(s, t)
    (grad_expected,) = torch.autograd.grad(expected, s)
    chunked = terms.spatial_affinity_l1(s, t, chunk=7)
    (grad_chunked,) = torch.autograd.grad(chunked, s)
    torch.testing.assert_close(chunked, expected)
    torch.testing.assert_close(grad_chunked, grad_expected)
    torch.testing.assert_close(terms.spatial_affinity_l1(3 * s, t, chunk=4), expected)  # scale-free
    assert terms.spatial_affinity_l1(t, t, chunk=5) < 1e-12


def test_distill_resume_reproduces_the_uninterrupted_run(photos: Path, tmp_path: Path) -> None:
    straight = Trainer(_config(photos, tmp_path / "straight", "lsfd", steps=5))
    full = straight.run()
    run = tmp_path / "split"
    stopped = Trainer(_config(photos, run, "lsfd", steps=5))
    stopped.run(stop_at=2)
    assert stopped.kept().endswith(f"go on with: jdsr distill --resume {run}")  # the command that started it
    resumed = Trainer(_config(photos, run, "lsfd", steps=5, resume=str(run)))
    assert resumed.run().losses == pytest.approx(full.losses[2:], rel=1e-5, abs=1e-7)
    for a, b in zip(straight.method.student.state_dict().values(), resumed.method.student.state_dict().values(),
                    strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_bad_distillations_are_refused_in_one_line(photos: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    base = ["distill", str(photos), "-s", "2", "--student-arch", "pan", "--out", str(tmp_path / "x")]
    cases = [
        ([], "jdsr distill needs a teacher: --teacher MODEL"),
        (["--teacher", "imdn-x3"], "--teacher imdn-x3: imdn-x3 (imdn) is ×3, not an upscaler ×2 (or a whole multiple"),
        (["--teacher", TEACHER, "--method", "fitnet", "--taps-student", "body.99"],
         "--taps-student: unknown feature tap(s) 'body.99' for PAN"),
        (["--teacher", TEACHER, "--method", "fitnet", "--taps-student", "body_tail", "--taps-teacher", "head,body_tail"],
         "--taps-teacher: 2 taps on imdn-x2, 1 on the student"),
        (["--teacher", TEACHER, "--method", "magic"], "--method 'magic': choose output, fitnet"),
    ]
    for extra, message in cases:
        result = runner.invoke(app, [*base, *extra])
        assert result.exit_code == 2 and message in result.output, (extra, result.output)
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_two_process_gloo_distill_equals_one_process_with_twice_the_batch(photos: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    config = tmp_path / "student.toml"
    config.write_text("arch_kwargs = { nf = 8, unf = 8, nb = 6 }\n")
    args = ["distill", str(photos), "-s", "2", "--teacher", TEACHER, "--student-arch", "pan", "--method", "fitnet",
            "--config", str(config), "--steps", "3", "--patch-size", "16", "--val-every", "3", "--save-every", "3",
            "--workers", "0", "--device", "cpu", "--seed", "5"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1",
                          "--nproc_per_node", "2", "-m", "jdsr_cli", *args, "--batch-size", "2", "--out",
                          str(tmp_path / "ddp")], capture_output=True, text=True, timeout=600, env=env)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    single = subprocess.run([sys.executable, "-m", "jdsr_cli", *args, "--batch-size", "4", "--out",
                             str(tmp_path / "one")], capture_output=True, text=True, timeout=600, env=env)
    assert single.returncode == 0, single.stderr[-3000:]
    a = load_file(tmp_path / "ddp" / "last" / "model.safetensors")
    b = load_file(tmp_path / "one" / "last" / "model.safetensors")
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5)


def test_a_x4_teacher_teaches_a_x2_student_through_a_bicubic_shrink_and_w_hr_0_validates_against_it(
        photos: Path, tmp_path: Path) -> None:
    """Real-ESRGAN has one x4 model; a x2 student learns its output shrunk by MATLAB bicubic (its --outscale 2),
    and without the HR term the best checkpoint is the one closest to that target."""
    from jdsr_cli.checkpoints.resolve import resolve_model
    from jdsr_cli.ops.resize import imresize
    from jdsr_cli.training.methods.distill.teachers import ResizedTeacher, load_teacher

    loaded = load_teacher("imdn-x4", 2)
    assert isinstance(loaded.model, ResizedTeacher)
    x = torch.rand(1, 3, 10, 12)
    with torch.no_grad():
        inner = resolve_model("imdn-x4", scale=4).model(x)
        torch.testing.assert_close(loaded.model(x), imresize(inner, size=(20, 24)))
    run = tmp_path / "run"
    result = CliRunner().invoke(app, [
        "distill", str(photos), "-s", "2", "--teacher", "imdn-x4", "--student-arch", "imdn", "--student-preset",
        "small", "--w-hr", "0", "--steps", "2", "--batch-size", "2", "--patch-size", "16", "--val-every", "2",
        "--workers", "0", "--device", "cpu", "--out", str(run)])
    assert result.exit_code == 0, result.output
    assert "val PSNR-Y crop=2 to the teacher" in result.output
    record = next(json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if "val_psnr" in line)
    assert record["convention"] == "PSNR-Y crop=2 to the teacher" and record["val_psnr"] > record["hr_psnr"]
