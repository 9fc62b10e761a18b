"""Training machinery: messy folders, exact resume, config precedence, non-finite loss, checkpoints."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image as PILImage

from jdsr_cli.errors import UsageError
from jdsr_cli.training.config import TrainConfig, load_config
from jdsr_cli.training.trainer import Trainer, TrainingError


@pytest.fixture(scope="module")
def messy_folder(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """Nested folders, PNG/JPEG/WebP/BMP/TIFF, one corrupt file, one too small, one text file."""
    root = tmp_path_factory.mktemp("photos")
    bsd = sorted((data_dir / "train" / "BSD200").glob("*.png"))[:6]
    (root / "a" / "b").mkdir(parents=True)
    for i, (path, target) in enumerate(zip(bsd, ["x.png", "a/y.jpg", "a/b/z.webp", "a/w.bmp", "a/b/v.tif", "u.png"],
                                           strict=True)):
        PILImage.open(path).save(root / target, **({"quality": 95} if target.endswith(".jpg") else {}))
        del i
    (root / "a" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    PILImage.new("RGB", (20, 20)).save(root / "tiny.png")
    (root / "notes.txt").write_text("not an image")
    return root


def _config(data: Path, out: Path, **kw) -> TrainConfig:  # type: ignore[no-untyped-def]
    base = dict(data=str(data), scale=2, arch="edsr", preset="tiny", steps=8, batch_size=2, patch_size=16,
                val_every=4, save_every=4, log_every=1, out=str(out), device="cpu", workers=0, seed=3,
                val_fraction=0.3)
    base.update(kw)
    return load_config(None, base)


def test_messy_folder_trains_and_lists_skipped_files(messy_folder: Path, tmp_path: Path) -> None:
    skipped: list[str] = []
    result = Trainer(_config(messy_folder, tmp_path / "run"), log=skipped.append).run()
    assert result.steps == 8 and len(result.losses) == 8
    assert any("broken.png" in s for s in skipped) and any("tiny.png" in s for s in skipped)
    for which in ("last", "best"):
        assert (tmp_path / "run" / which / "model.safetensors").is_file()
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == list(range(1, 9))
    assert [r["step"] for r in records if "val_psnr" in r] == [4, 8]
    assert "scale = 2" in (tmp_path / "run" / "config.toml").read_text()


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_reproduces_the_uninterrupted_run(messy_folder: Path, tmp_path: Path, workers: int) -> None:
    straight = Trainer(_config(messy_folder, tmp_path / "straight", workers=workers, ema_decay=0.9))
    full = straight.run()
    Trainer(_config(messy_folder, tmp_path / "split", workers=workers, ema_decay=0.9, save_every=3)).run(stop_at=4)
    resumed = Trainer(_config(messy_folder, tmp_path / "split", workers=workers, ema_decay=0.9,
                              save_every=3, resume=str(tmp_path / "split")))
    second = resumed.run()
    assert second.losses == pytest.approx(full.losses[4:], rel=1e-5, abs=1e-7)
    for a, b in zip(straight.model.state_dict().values(), resumed.model.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    for a, b in zip(straight.ema.state_dict().values(), resumed.ema.state_dict().values(), strict=True):  # type: ignore[union-attr]
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_a_stop_signal_keeps_the_step_it_stopped_after_and_resume_reproduces_the_run(messy_folder: Path,
                                                                                      tmp_path: Path) -> None:
    """SIGTERM during step 5 (saves every 3): last/ holds step 5, and resuming from it ends where a straight run does."""
    import os
    import signal

    from jdsr_cli.errors import Interrupted

    straight = Trainer(_config(messy_folder, tmp_path / "straight", ema_decay=0.9))
    straight.run()
    stopped = Trainer(_config(messy_folder, tmp_path / "split", ema_decay=0.9, save_every=3))
    step = stopped._train_step

    def signalled(lr_batch, hr_batch):  # type: ignore[no-untyped-def]
        if stopped.step == 4:  # inside step 5, as a Ctrl-C in the middle of a step arrives
            os.kill(os.getpid(), signal.SIGTERM)
        return step(lr_batch, hr_batch)

    stopped._train_step = signalled  # type: ignore[method-assign]
    with pytest.raises(Interrupted, match=r"after step 5; .*last \(step 5\) is kept"):
        stopped.run()
    resumed = Trainer(_config(messy_folder, tmp_path / "split", ema_decay=0.9, save_every=3,
                              resume=str(tmp_path / "split")))
    second = resumed.run()
    assert len(second.losses) == 8 - 5  # it went on from step 5
    for a, b in zip(straight.model.state_dict().values(), resumed.model.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    for a, b in zip(straight.ema.state_dict().values(), resumed.ema.state_dict().values(), strict=True):  # type: ignore[union-attr]
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_checkpoints_load_in_upscale(messy_folder: Path, tmp_path: Path) -> None:
    from jdsr_cli.checkpoints.load import load_checkpoint

    Trainer(_config(messy_folder, tmp_path / "run", steps=4)).run()
    loaded = load_checkpoint(tmp_path / "run" / "best")
    assert loaded.config.arch == "edsr" and loaded.model_scale == 2
    assert "val" in loaded.meta["metrics"]


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(messy_folder: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    Trainer(_config(messy_folder, run)).run(stop_at=4)
    good = (run / "last" / "model.safetensors").read_bytes()
    trainer = Trainer(_config(messy_folder, run, steps=8, resume=str(run)))
    with torch.no_grad():
        trainer.model.conv_first.weight.fill_(float("nan"))
    original = trainer.load_state

    def poisoned(folder: Path) -> None:
        original(folder)
        with torch.no_grad():
            trainer.model.conv_first.weight.fill_(float("inf"))

    trainer.load_state = poisoned  # type: ignore[method-assign]
    with pytest.raises(TrainingError, match="non-finite loss at step 5"):
        trainer.run()
    assert (run / "last" / "model.safetensors").read_bytes() == good


def test_config_precedence_defaults_file_flags(tmp_path: Path) -> None:
    toml = tmp_path / "run.toml"
    toml.write_text('data = "photos"\nsteps = 300\nlr = 0.001\nbatch_size = 8\n')
    config = load_config(toml, {"steps": 50, "lr": None, "seed": 7})
    assert (config.steps, config.lr, config.batch_size, config.seed, config.patch_size) == (50, 0.001, 8, 7, 48)
    bad = tmp_path / "bad.toml"
    bad.write_text('data = "photos"\nstep = 3\n')
    with pytest.raises(UsageError, match="unknown option"):
        load_config(bad, {})
    roundtrip = tmp_path / "saved.toml"
    roundtrip.write_text(config.to_toml())
    assert load_config(roundtrip, {}) == config


def test_missing_or_empty_data_folder_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no images"):
        Trainer(_config(tmp_path / "empty", tmp_path / "run")).run()
    shutil.rmtree(tmp_path / "empty")
    with pytest.raises(UsageError, match="not a folder"):
        Trainer(_config(tmp_path / "empty", tmp_path / "run")).run()


def test_jdsr_train_cli_resume_and_upscale_with_its_checkpoint(messy_folder: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import shlex
    import sys

    from typer.testing import CliRunner

    from jdsr_cli.cli.main import app

    runner = CliRunner()

    def invoke(*args: str):  # type: ignore[no-untyped-def]
        monkeypatch.setattr(sys, "argv", ["/venv/bin/jdsr", *args])  # what the checkpoint records
        return runner.invoke(app, list(args))

    run = tmp_path / "run"
    common = ["--workers", "0", "--device", "cpu"]
    start = ["train", str(messy_folder), "-s", "2", "--arch", "edsr", "--preset", "tiny", "--steps", "4",
             "--batch-size", "2", "--patch-size", "16", "--val-every", "2", "--save-every", "2", "--out", str(run), *common]
    first = invoke(*start)
    assert first.exit_code == 0, first.output
    assert "skipped:" in first.output and "broken.png" in first.output
    resume = ["train", "--resume", str(run), "--steps", "6", *common]
    again = invoke(*resume)
    assert again.exit_code == 0 and "resumed at step 4" in again.output, again.output
    assert [json.loads(x)["step"] for x in (run / "log.jsonl").read_text().splitlines() if "loss" in x][-1] == 6
    recipe = json.loads((run / "last" / "config.json").read_text())["training"]
    assert recipe["command"] == shlex.join(["jdsr", *start]) and recipe["resumed_with"] == [shlex.join(["jdsr", *resume])]
    image = messy_folder / "x.png"
    up = runner.invoke(app, ["upscale", str(image), "--model", str(run / "best"), "-o", str(tmp_path / "out")])
    assert up.exit_code == 0, up.output
    assert PILImage.open(tmp_path / "out" / "x_x2.png").size == tuple(2 * v for v in PILImage.open(image).size)
    bad = runner.invoke(app, ["train", str(messy_folder), "-s", "5", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "--scale 5" in bad.output
    kept = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    over = invoke(*start)  # a new run into the same folder would replace its best/ and last/
    assert over.exit_code == 2 and f"--out {run} already holds a training run (last/ at step 6)" in over.output
    assert "jdsr train --resume" in over.output and {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == kept
    from jdsr_cli.training.resume import check_new_run_folder

    unsaved = tmp_path / "unsaved"  # a run stopped before its first checkpoint: nothing to lose, start it again
    unsaved.mkdir()
    (unsaved / "config.toml").write_text((run / "config.toml").read_text())
    check_new_run_folder(unsaved)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["supervised", "superior-lr"])
def test_two_process_gloo_ddp_equals_one_process_with_twice_the_batch(messy_folder: Path, tmp_path: Path,
                                                                      method: str) -> None:
    """Rank r takes samples i·world + r, so 2 ranks × batch 2 see exactly the samples of 1 process × batch 4;
    DDP averages the gradients, so the weights must agree up to float reduction order (the superior-LR
    encoder's 8-bit rounding can flip a level on such a difference, hence its looser tolerance)."""
    import os
    import subprocess
    import sys

    from safetensors.torch import load_file

    args = ["train", str(messy_folder), "-s", "2", "--arch", "edsr", "--preset", "tiny", "--steps", "3",
            "--patch-size", "16", "--val-every", "3", "--save-every", "3", "--workers", "0", "--device", "cpu",
            "--seed", "5", "--method", method]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ddp = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1", "--nproc_per_node", "2",
         "-m", "jdsr_cli", *args, "--batch-size", "2", "--out", str(tmp_path / "ddp")],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    assert ddp.stdout.count("done: best val") == 1, "only rank 0 reports"
    single = subprocess.run([sys.executable, "-m", "jdsr_cli", *args, "--batch-size", "4", "--out", str(tmp_path / "one")],
                            capture_output=True, text=True, timeout=300, env=env)
    assert single.returncode == 0, single.stderr[-3000:]
    parts = [""] if method == "supervised" else ["encoder", "decoder"]
    for part in parts:
        a = load_file(tmp_path / "ddp" / "last" / part / "model.safetensors")
        b = load_file(tmp_path / "one" / "last" / part / "model.safetensors")
        assert a.keys() == b.keys()
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5 if method == "supervised" else 1e-4)


def test_release_configs_load_and_init_transfers_the_body(messy_folder: Path, tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[1] / "configs"
    for scale in (2, 3, 4):
        config = load_config(root / f"imdn-x{scale}.toml", {})
        assert config.scale == scale and config.arch == "imdn"
        slr = load_config(root / f"slr-x{scale}.toml", {})
        assert (slr.scale, slr.method, slr.arch) == (scale, "superior-lr", "edsr")
    finetune = load_config(root / "imdn-x4-ft.toml", {})
    assert (finetune.scale, finetune.init) == (4, "runs/imdn-x4/best")
    restart = load_config(root / "imdn-x4-ft2.toml", {})
    assert (restart.scale, restart.init, restart.patch_size) == (4, "runs/imdn-x4-ft/best", 64)
    Trainer(_config(messy_folder, tmp_path / "x3", scale=3, steps=2)).run()
    logs: list[str] = []
    trainer = Trainer(_config(messy_folder, tmp_path / "x2", init=str(tmp_path / "x3" / "last")), log=logs.append)
    assert any("initialised" in line for line in logs)
    from jdsr_cli.checkpoints.load import load_checkpoint

    body = load_checkpoint(tmp_path / "x3" / "last").model.state_dict()["body.0.conv1.weight"]
    torch.testing.assert_close(trainer.model.state_dict()["body.0.conv1.weight"], body)


def test_a_fine_tuned_checkpoint_records_what_it_started_from_even_after_resume(messy_folder: Path,
                                                                               tmp_path: Path) -> None:
    """The init checkpoint's name, sha256 and recipe travel into the new run's checkpoints, and a resume
    keeps them (and needs no init checkpoint any more) so the bundled table can show the whole recipe."""
    import shutil

    from jdsr_cli.checkpoints.load import load_checkpoint

    Trainer(_config(messy_folder, tmp_path / "x3", scale=3, steps=2, save_every=2, val_every=2)).run()
    source = load_checkpoint(tmp_path / "x3" / "last").meta
    Trainer(_config(messy_folder, tmp_path / "x2", steps=2, save_every=2, val_every=2,
                    init=str(tmp_path / "x3" / "last"))).run()
    shutil.rmtree(tmp_path / "x3")
    Trainer(_config(messy_folder, tmp_path / "x2", steps=4, save_every=2, val_every=2,
                    init=str(tmp_path / "x3" / "last"), resume=str(tmp_path / "x2"))).run()
    recipe = load_checkpoint(tmp_path / "x2" / "last").meta["training"]
    assert recipe["step"] == 4
    [origin] = recipe["init_from"]
    assert origin["name"] == source["name"] and origin["weights_sha256"] == source["weights_sha256"]
    assert origin["training"]["step"] == 2 and origin["training"]["command"] == source["training"]["command"]


def test_init_fine_tunes_a_bundled_model_by_name(messy_folder: Path, tmp_path: Path) -> None:
    """`--init imdn-x4` starts from every tensor of the bundled model; either half of a bundled superior-LR
    pair brings both halves; an unknown name is an error that names --init."""
    from jdsr_cli.checkpoints.resolve import resolve_model
    from jdsr_cli.errors import JdsrError

    logs: list[str] = []
    trainer = Trainer(_config(messy_folder, tmp_path / "ft", scale=4, arch="imdn", preset=None, init="imdn-x4"),
                      log=logs.append)
    bundled = resolve_model("imdn-x4", scale=None).model.state_dict()
    assert any(f"initialised {len(bundled)}/{len(bundled)} tensors from imdn-x4" in line for line in logs), logs
    for key, value in bundled.items():
        torch.testing.assert_close(trainer.model.state_dict()[key], value)

    decoder = resolve_model("slr-up-x4", scale=None)
    assert decoder.entry is not None and decoder.entry.pair
    encoder = resolve_model(decoder.entry.pair, scale=None)
    for name in (encoder.name, decoder.name):
        trainer = Trainer(_config(messy_folder, tmp_path / name, scale=4, method="superior-lr", arch="edsr",
                                  preset="slr-decoder", init=name))
        for half, loaded in ((trainer.model.encoder, encoder), (trainer.model.decoder, decoder)):
            for key, value in loaded.model.state_dict().items():
                torch.testing.assert_close(half.state_dict()[key], value)
    with pytest.raises(JdsrError, match=r"--init 'no-such-model': not a file"):
        Trainer(_config(messy_folder, tmp_path / "bad", init="no-such-model"))


def test_memory_format_does_not_change_what_is_learned(messy_folder: Path, tmp_path: Path) -> None:
    nhwc = Trainer(_config(messy_folder, tmp_path / "nhwc", steps=4, channels_last=True))
    nchw = Trainer(_config(messy_folder, tmp_path / "nchw", steps=4, channels_last=False))
    assert nhwc.run().losses == pytest.approx(nchw.run().losses, rel=1e-4)
    for a, b in zip(nhwc.model.state_dict().values(), nchw.model.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_bf16_training_learns_like_fp32_and_saves_fp32_weights(messy_folder: Path, tmp_path: Path) -> None:
    from jdsr_cli.checkpoints.load import load_checkpoint

    fp32 = Trainer(_config(messy_folder, tmp_path / "fp32", steps=6)).run()
    bf16 = Trainer(_config(messy_folder, tmp_path / "bf16", steps=6, precision="bf16")).run()
    # bf16 keeps ~3 significant digits: the same curve to a few percent, not bit for bit
    assert bf16.losses == pytest.approx(fp32.losses, rel=0.05)
    loaded = load_checkpoint(tmp_path / "bf16" / "last")
    assert all(t.dtype == torch.float32 for t in loaded.model.state_dict().values())
    assert "precision = \"bf16\"" in (tmp_path / "bf16" / "config.toml").read_text()
    with pytest.raises(UsageError, match="fp16"):
        _config(messy_folder, tmp_path / "x", precision="fp16")


def test_ema_warm_up_forgets_the_random_start() -> None:
    from jdsr_cli.training.trainer import ema_decay_at

    assert ema_decay_at(0.999, 0) == pytest.approx(0.1)
    assert ema_decay_at(0.999, 100) < 0.95 and ema_decay_at(0.999, 20000) == 0.999
    remaining = 1.0  # weight of the initial parameters left in the EMA after 1000 steps
    for step in range(1000):
        remaining *= ema_decay_at(0.999, step)
    assert remaining < 1e-3  # without the warm-up: 0.999**1000 = 0.37


def test_bf16_on_a_cpu_without_native_bf16_warns(messy_folder: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """oneDNN emulates bf16 on such CPUs (AVX2): a bf16 step ran ~9× slower than fp32, a trap worth a line."""
    from jdsr_cli.engine import device

    lines: list[str] = []
    monkeypatch.setattr(device, "cpu_bf16_is_native", lambda: False)
    Trainer(_config(messy_folder, tmp_path / "a", precision="bf16"), log=lines.append)
    Trainer(_config(messy_folder, tmp_path / "b", precision="fp32"), log=lines.append)
    assert lines == [f"warning: {device.CPU_BF16_WARNING}"]
    monkeypatch.setattr(device, "cpu_bf16_is_native", lambda: True)
    Trainer(_config(messy_folder, tmp_path / "c", precision="bf16"), log=lines.append)
    assert len(lines) == 1
