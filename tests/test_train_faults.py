"""`jdsr train` under faults: damaged run folders, changed options on resume, unusable data, signals, bugs.

Every case ends in one line that names the file or option and says how to go on, with the exit code of
``jdsr_cli.errors`` (2 could not start, 1 failed while running, 128 + signal when interrupted).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image as PILImage
from typer.testing import CliRunner

from jdsr_cli.cli.main import app

TINY = ["-s", "2", "--arch", "fsrcnn", "--batch-size", "2", "--patch-size", "16", "--workers", "0",
        "--device", "cpu"]


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """Three small crops of real training photos (enough for 16 px LR patches at ×2)."""
    root = tmp_path_factory.mktemp("photos")
    for path in sorted((data_dir / "train" / "BSD200").glob("*.png"))[:3]:
        PILImage.open(path).crop((0, 0, 96, 80)).save(root / path.name)
    return root


def jdsr(*args: str, **env: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, list(args), env=env or None)


def lines(result) -> list[str]:  # type: ignore[no-untyped-def]
    return [line for line in result.output.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def finished_run(photos: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An FSRCNN ×2 run at step 2 of 2 with last/ and best/ (copy it before damaging it)."""
    run = tmp_path_factory.mktemp("runs") / "run"
    result = jdsr("train", str(photos), *TINY, "--steps", "2", "--save-every", "2", "--val-every", "2",
                  "--out", str(run))
    assert result.exit_code == 0, result.output
    return run


@pytest.fixture
def run(finished_run: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(finished_run, copy)
    return copy


def _cut_in_half(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


DAMAGE = {
    "state cut in half": (lambda run: _cut_in_half(run / "last" / "training_state.pt"), "training_state.pt"),
    "state missing": (lambda run: (run / "last" / "training_state.pt").unlink(), "training_state.pt"),
    "weights cut in half": (lambda run: _cut_in_half(run / "last" / "model.safetensors"), "model.safetensors"),
    "config.json garbage": (lambda run: (run / "last" / "config.json").write_text("{nope"), "config.json"),
    "config.toml garbage": (lambda run: (run / "config.toml").write_text("arch = [\n"), "config.toml"),
    "config.toml edited": (lambda run: (run / "config.toml").write_text(
        (run / "config.toml").read_text().replace('arch = "fsrcnn"', 'arch = "imdn"')), "does not fit"),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_a_damaged_run_folder_names_the_file_and_how_to_go_on(run: Path, case: str) -> None:
    damage, name = DAMAGE[case]
    damage(run)
    toml = (run / "config.toml").read_bytes()
    result = jdsr("train", "--resume", str(run), "--steps", "4")
    assert result.exit_code == 2, result.output
    [line] = lines(result)
    assert name in line and str(run) in line and "--init" in line, line
    assert (run / "config.toml").read_bytes() == toml


def test_resuming_a_folder_that_is_no_run_is_one_line(tmp_path: Path) -> None:
    for folder in (tmp_path / "missing", tmp_path):
        result = jdsr("train", "--resume", str(folder))
        assert result.exit_code == 2, result.output
        [line] = lines(result)
        assert str(folder) in line and "run" in line, line


@pytest.mark.parametrize(("args", "expected"), [
    (["--lr", "-1"], "--lr -1: the learning rate must be above 0"),
    (["--preset", "huge"], "'imdn' has no preset 'huge'; presets: default, small"),
    (["--method", "superior-lr", "--arch", "imdn", "--config", "{encoder}"], "'slr-encoder' has no preset 'giant'"),
    (["--val", "{missing}"], "--val {missing}: no such folder"),
    (["--lr-dir", "{encoder}"], "--lr-dir {encoder}: a file, not a folder"),
])
def test_bad_numbers_and_names_are_one_line_before_any_data_is_read(tmp_path: Path, args: list[str],
                                                                    expected: str) -> None:
    config = tmp_path / "encoder.toml"
    config.write_text('encoder_preset = "giant"\n')
    fill = {"{encoder}": str(config), "{missing}": str(tmp_path / "missing")}
    args = [fill.get(arg, arg) for arg in args]
    for key, value in fill.items():
        expected = expected.replace(key, value)
    result = jdsr("train", str(tmp_path / "no-data-needed"), "-s", "2", "--out", str(tmp_path / "run"), *args)
    assert result.exit_code == 2, result.output
    [line] = lines(result)
    assert line.startswith(f"error: {expected}"), line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("option", "value", "saved"), [
    ("--arch", "imdn", "fsrcnn"), ("-s", "3", "2"), ("--method", "superior-lr", "supervised"),
    ("--preset", "fsrcnn-s", "none"), ("--lr", "0.01", "0.0002"), ("--ema-decay", "0.9", "0"),
])
def test_options_that_shape_the_run_cannot_change_on_resume(run: Path, option: str, value: str, saved: str) -> None:
    toml = (run / "config.toml").read_bytes()
    result = jdsr("train", "--resume", str(run), "--steps", "4", option, value)
    assert result.exit_code == 2, result.output
    [line] = lines(result)
    assert "cannot change on resume" in line and saved in line and value in line, line
    # the hint is the command that does what was asked: a new run (from the weights, unless the arch changes)
    assert f"--config {run / 'config.toml'} {option.replace('-s', '--scale')} {value}" in line, line
    assert ("--init" in line) == (option != "--arch"), line
    assert "Traceback" not in result.output and (run / "config.toml").read_bytes() == toml


def test_options_that_do_not_shape_the_run_can_change_on_resume(run: Path, photos: Path, tmp_path: Path) -> None:
    moved = tmp_path / "moved"
    shutil.copytree(photos, moved)
    result = jdsr("train", str(moved), "--resume", str(run), "--steps", "5", "--batch-size", "3",
                  "--patch-size", "12", "--save-every", "1", "--val-every", "1", "--seed", "9", "--schedule",
                  "multistep", "--workers", "0", "--device", "cpu", "--precision", "bf16", "--no-channels-last")
    assert result.exit_code == 0, result.output
    assert "resumed at step 2" in result.output
    saved = (run / "config.toml").read_text()
    assert "steps = 5" in saved and "batch_size = 3" in saved and f'data = "{moved}"' in saved
    assert "resume" not in saved  # a run's config.toml is reusable with --config, it never resumes by itself


def test_resume_with_no_more_steps_than_done_is_refused(run: Path) -> None:
    toml = (run / "config.toml").read_bytes()
    for steps in ("1", "2"):
        result = jdsr("train", "--resume", str(run), "--steps", steps)
        assert result.exit_code == 2, result.output
        [line] = lines(result)
        assert "at step 2" in line and f"--steps {steps}" in line and "more steps" in line, line
    assert (run / "config.toml").read_bytes() == toml
    assert "done" not in result.output


def test_an_empty_or_unreadable_folder_fails_before_training_starts(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = jdsr("train", str(empty), *TINY, "--out", str(tmp_path / "r1"))
    assert result.exit_code == 2, result.output
    [line] = lines(result)
    assert str(empty) in line and "no images" in line, line

    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("a.png", "b.jpg", "c.webp"):
        (broken / name).write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    PILImage.new("RGB", (20, 20)).save(broken / "small.png")
    result = jdsr("train", str(broken), *TINY, "--out", str(tmp_path / "r2"))
    assert result.exit_code == 2, result.output
    [line] = lines(result)
    assert str(broken) in line and "none of the 4 images" in line and "3 unreadable" in line, line
    assert "1 smaller than" in line
    assert not (tmp_path / "r1").exists() and not (tmp_path / "r2").exists()


def test_a_folder_whose_only_readable_image_is_held_out_says_so(photos: Path, tmp_path: Path) -> None:
    from jdsr_cli.errors import UsageError
    from jdsr_cli.training.config import load_config
    from jdsr_cli.training.dataset import build_data

    folder = tmp_path / "three"
    folder.mkdir()
    shutil.copy(sorted(photos.iterdir())[0], folder / "a.png")  # the split holds out the first image
    for name in ("b.png", "c.png"):
        (folder / name).write_bytes(b"\x89PNG\r\n\x1a\n")
    config = dict(data=str(folder), scale=2, arch="fsrcnn", patch_size=16)
    refusal = r"none of the 3 images is usable for training \(2 unreadable: b\.png, c\.png; 1 held out"
    with pytest.raises(UsageError, match=refusal):
        build_data(load_config(None, config))
    (tmp_path / "val").mkdir()
    with pytest.raises(UsageError, match=r"--val .*val: no readable image to validate on \(no images found\)"):
        build_data(load_config(None, {**config, "data": str(photos), "val": str(tmp_path / "val")}))


@pytest.mark.parametrize("command", ["train", "distill"])
def test_an_out_that_is_a_file_is_one_line_before_anything(tmp_path: Path, photos: Path, command: str) -> None:
    blocker = tmp_path / "afile"
    blocker.write_text("mine")
    extra = ["--teacher", "imdn-x2"] if command == "distill" else []
    for out in (blocker, blocker / "sub"):
        result = jdsr(command, str(photos), "-s", "2", *extra, "--out", str(out))
        assert result.exit_code == 2, result.output
        [line] = lines(result)
        assert line == f"error: --out {out}: {blocker} is a file, not a folder", line
    assert blocker.read_text() == "mine"


def test_resuming_after_the_data_moved_says_how_to_point_at_it(photos: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(photos, data)
    run = tmp_path / "run"
    assert jdsr("train", str(data), *TINY, "--steps", "2", "--out", str(run)).exit_code == 0
    data.rename(tmp_path / "moved")
    result = jdsr("train", "--resume", str(run), "--steps", "4")
    assert result.exit_code == 2, result.output
    [line] = lines(result)
    assert f"jdsr train NEW_FOLDER --resume {run}" in line, line
    resumed = jdsr("train", str(tmp_path / "moved"), "--resume", str(run), "--steps", "4")
    assert resumed.exit_code == 0, resumed.output


def test_an_unreadable_held_out_image_is_replaced_by_a_readable_one(photos: Path, tmp_path: Path) -> None:
    """The split does not read files: when every image it held out is broken, a readable one is held out."""
    from jdsr_cli.training.config import load_config
    from jdsr_cli.training.dataset import build_data

    folder = tmp_path / "four"
    folder.mkdir()
    (folder / "a_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n")  # sorts first: the one the split holds out
    for k, path in enumerate(sorted(photos.iterdir())[:3]):
        shutil.copy(path, folder / f"b{k}.png")
    config = load_config(None, dict(data=str(folder), scale=2, arch="fsrcnn", patch_size=16))
    train, val, skipped = build_data(config)
    assert (len(train), len(val)) == (2, 1) and [s.path.name for s in skipped] == ["a_broken.png"]
    again = build_data(config)  # the same files give the same split (resume)
    assert np.array_equal(again[1][0].hr, val[0].hr)
    assert not any(np.array_equal(pair.hr, val[0].hr) for pair in train)


def _boom_at_step(step: int):  # type: ignore[no-untyped-def]
    from jdsr_cli.training.trainer import Trainer

    original = Trainer._train_step

    def train_step(self, lr_batch, hr_batch):  # type: ignore[no-untyped-def]
        if self.step + 1 == step:
            raise RuntimeError("boom: a bug deep inside\nsecond line of a long message")
        return original(self, lr_batch, hr_batch)

    return train_step


@pytest.mark.parametrize("debug", ["", "--debug", "JDSR_DEBUG=1"])
def test_an_unexpected_error_is_one_line_and_keeps_the_last_checkpoint(photos: Path, tmp_path: Path, debug: str,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from jdsr_cli.checkpoints.load import load_checkpoint
    from jdsr_cli.training.trainer import Trainer

    monkeypatch.setattr(Trainer, "_train_step", _boom_at_step(5))
    run = tmp_path / "run"
    args = ["train", str(photos), *TINY, "--steps", "8", "--save-every", "2", "--val-every", "2", "--out", str(run)]
    result = jdsr(*args, *(["--debug"] if debug == "--debug" else []),
                  **({"JDSR_DEBUG": "1"} if debug.startswith("JDSR") else {}))
    assert result.exit_code == 1, result.output
    if debug:
        assert "Traceback" in result.output and "second line" in result.output
    else:
        assert "Traceback" not in result.output and "second line" not in result.output
    [error] = [line for line in lines(result) if line.startswith("error:")]
    assert "RuntimeError: boom: a bug deep inside (the run stopped after step 4)" in error, error
    assert f"{run / 'last'} (step 4) is kept; go on with: jdsr train --resume {run}" in error, error
    assert load_checkpoint(run / "last").meta["training"]["step"] == 4


def test_a_full_disk_names_the_checkpoint_and_keeps_the_previous_one(photos: Path, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    from jdsr_cli.checkpoints.load import load_checkpoint
    from jdsr_cli.training import trainer as trainer_module

    saves = {"count": 0}
    real_save = torch.save

    def save(obj, handle, *args, **kwargs):  # type: ignore[no-untyped-def]
        saves["count"] += 1
        if saves["count"] == 2:  # the second training state: the disk is full (a write error names no file)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, handle, *args, **kwargs)

    monkeypatch.setattr(trainer_module.torch, "save", save)
    run = tmp_path / "run"
    result = jdsr("train", str(photos), *TINY, "--steps", "8", "--save-every", "2", "--val-every", "100",
                  "--out", str(run))
    assert result.exit_code == 1, result.output
    [error] = [line for line in lines(result) if line.startswith("error:")]
    assert f"No space left on device: '{run / 'last'}'" in error, error
    assert f"{run / 'last'} (step 2) is kept" in error, error
    assert load_checkpoint(run / "last").meta["training"]["step"] == 2


def test_an_unexpected_error_before_the_start_is_one_line(photos: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import jdsr_cli.training.methods as methods

    def broken(config):  # type: ignore[no-untyped-def]
        raise TypeError("a bug in a constructor")

    monkeypatch.setattr(methods, "build_method", broken)
    result = jdsr("train", str(photos), *TINY, "--out", str(tmp_path / "run"))
    assert result.exit_code == 1, result.output
    [line] = lines(result)
    assert line.startswith("error: TypeError: a bug in a constructor (before training started; nothing was written)")
    assert not (tmp_path / "run").exists()


def test_the_previous_sigterm_handler_is_back_after_a_run(photos: Path, tmp_path: Path) -> None:
    from jdsr_cli.training.config import load_config
    from jdsr_cli.training.trainer import Trainer

    def mine(signum, frame) -> None:  # type: ignore[no-untyped-def]
        pass

    previous = signal.signal(signal.SIGTERM, mine)
    sigint = signal.getsignal(signal.SIGINT)  # default_int_handler, or SIG_IGN when CI runs in the background
    try:
        config = load_config(None, dict(data=str(photos), scale=2, arch="fsrcnn", steps=1, batch_size=2,
                                        patch_size=16, out=str(tmp_path / "run"), device="cpu", workers=0))
        Trainer(config, log=lambda _: None).run()
        assert signal.getsignal(signal.SIGTERM) is mine
        assert signal.getsignal(signal.SIGINT) is sigint
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_second_signal_stops_at_once_but_lets_a_save_finish() -> None:
    from jdsr_cli.errors import Interrupted
    from jdsr_cli.process.signals import StopSignals

    def twice() -> None:
        for _ in range(2):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.01)  # Python runs the handler between bytecodes of the main thread

    with StopSignals() as stop:
        twice_done = False
        with pytest.raises(Interrupted) as caught, stop.shield():
            twice()
            twice_done = True  # the save in the shield finishes; the stop comes right after it
        assert twice_done and stop.signum == signal.SIGTERM and caught.value.exit_code == 143
    with StopSignals() as stop, pytest.raises(Interrupted):
        twice()
        pytest.fail("the second signal outside a shield stops at once")


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_cleanly_and_says_how_to_resume(photos: Path, tmp_path: Path, signum: int) -> None:
    """A real process with a data worker, its whole process group signalled (as Ctrl-C, ``kill -- -PGID``, SLURM or
    systemd do) once its first checkpoint exists: it exits 128 + signum with one line that names the step, the
    checkpoint kept and the resume command (the worker ignores the signal and does not crash the step); that
    checkpoint loads and --resume goes on."""
    from jdsr_cli.checkpoints.load import load_checkpoint

    run = tmp_path / "run"
    log = tmp_path / "stdout.txt"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    with open(log, "wb") as stdout:
        process = subprocess.Popen(
            [sys.executable, "-m", "jdsr_cli", "train", str(photos), *TINY, "--steps", "100000",
             "--save-every", "3", "--val-every", "100000", "--out", str(run), "--workers", "1"],
            stdout=stdout, stderr=subprocess.PIPE, env=env,
            preexec_fn=_as_a_job_from_a_terminal,
        )
        deadline = time.monotonic() + 120
        while not (run / "last" / "training_state.pt").exists():
            assert process.poll() is None and time.monotonic() < deadline, process.stderr.read().decode()  # type: ignore[union-attr]
            time.sleep(0.05)
        os.killpg(process.pid, signum)  # the main process and its data worker
        _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signum, stderr.decode()
    [line] = [x for x in stderr.decode().splitlines() if x.strip()]
    assert signal.Signals(signum).name in line and f"jdsr train --resume {run}" in line, line
    assert "Traceback" not in log.read_text()
    state = torch.load(run / "last" / "training_state.pt", map_location="cpu", weights_only=True)
    saved = state["step"]
    assert saved >= 3 and load_checkpoint(run / "last").meta["training"]["step"] == saved
    # the step it stopped after is the step kept: a stop loses no finished step
    assert f"after step {saved}; {run / 'last'} (step {saved}) is kept" in line, line
    result = jdsr("train", "--resume", str(run), "--steps", str(saved + 2), "--workers", "0", "--device", "cpu")
    assert result.exit_code == 0 and f"resumed at step {saved}" in result.output, result.output


def _as_a_job_from_a_terminal() -> None:
    """The child leads its own process group (a shell job) with SIGINT at its default, as from a shell prompt (a CI
    runner may ignore it)."""
    os.setpgrp()
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class _WorkerSignals(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.tensor([int(signal.getsignal(signal.SIGINT) == signal.SIG_IGN),
                             int(signal.getsignal(signal.SIGTERM) == signal.SIG_IGN)])


def test_data_workers_leave_stop_signals_to_the_main_process() -> None:
    """A signal to the whole process group must not kill a data worker mid-step (the run would crash instead of
    stopping at the step boundary): the training loader's workers ignore SIGINT and SIGTERM."""
    from jdsr_cli.process.signals import ignore_stop_signals

    loader = torch.utils.data.DataLoader(_WorkerSignals(), num_workers=1, worker_init_fn=ignore_stop_signals)
    assert next(iter(loader)).tolist() == [[1, 1]]
