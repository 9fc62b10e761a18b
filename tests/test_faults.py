"""The fault and bad-input matrix of the image commands (issue 13): each case failed before its fix.

Nothing a user gives may destroy an input, abort a batch or show a traceback: a bad file is that file's
failed record, an unusable option is one line and exit 2 before any work, and a signal still leaves
the summary and the report.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from typer.testing import CliRunner

from jdsr_cli.cli.main import app

runner = CliRunner()


def jdsr(*args: object):  # type: ignore[no-untyped-def]
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture()
def bird(data_dir: Path) -> Path:
    return data_dir / "benchmark" / "Set5" / "LR_bicubic" / "X4" / "birdx4.png"


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


# ------------------------------------------------------------------------------------ 1. inputs destroyed


def test_an_output_that_would_replace_another_input_is_refused_whatever_the_order(
    tmp_path: Path, bird: Path, trained_checkpoint: Path
) -> None:
    pics = tmp_path / "pics"
    pics.mkdir()
    PILImage.open(bird).save(pics / "a.jpg", quality=90)
    shutil.copy(bird, pics / "a.png")
    before = (pics / "a.png").read_bytes()
    report = tmp_path / "r.json"
    result = jdsr("upscale", pics, "-o", pics, "--suffix", "", "--format", "png", "--overwrite",
                  "--model", trained_checkpoint, "--json", report)
    assert result.exit_code == 1, result.output
    assert (pics / "a.png").read_bytes() == before
    records = {Path(r["input"]).name: r for r in json.loads(report.read_text())["files"]}
    assert records["a.jpg"]["status"] == "failed" and "would replace the input" in records["a.jpg"]["error"]
    assert records["a.png"]["status"] == "failed" and "the input itself" in records["a.png"]["error"]


def test_running_the_same_command_again_does_not_upscale_its_own_outputs(tmp_path: Path, bird: Path,
                                                                         trained_checkpoint: Path) -> None:
    """Outputs next to the inputs: the second run used to upscale a_x2.png into a_x2_x2.png and fail a.png."""
    pics = tmp_path / "pics"
    pics.mkdir()
    shutil.copy(bird, pics / "a.png")
    first = jdsr("upscale", pics, "--model", trained_checkpoint)
    assert first.exit_code == 0, first.output
    made = (pics / "a_x2.png").read_bytes()
    again = jdsr("upscale", pics, "--model", trained_checkpoint)
    assert again.exit_code == 0, again.output
    assert "a_x2.png: the output of" in again.output and "0 done, 2 skipped, 0 failed" in again.output
    assert sorted(p.name for p in pics.iterdir()) == ["a.png", "a_x2.png"] and (pics / "a_x2.png").read_bytes() == made
    redo = jdsr("upscale", pics, "--model", trained_checkpoint, "--overwrite")  # the output is replaced, not refused
    assert redo.exit_code == 0 and "1 done, 1 skipped, 0 failed" in redo.output, redo.output
    assert sorted(p.name for p in pics.iterdir()) == ["a.png", "a_x2.png"]


def test_planning_catches_a_collision_with_a_later_input_and_between_outputs(tmp_path: Path) -> None:
    from jdsr_cli.commands.batch import OutputNaming, plan_batch
    from jdsr_cli.commands.inputs import InputFile

    for name in ("a.jpg", "a.png", "b.tif", "b.tiff"):
        (tmp_path / name).write_bytes(b"x")
    items = [InputFile(tmp_path / n, Path(n)) for n in ("a.jpg", "a.png", "b.tif", "b.tiff")]
    plan = plan_batch(items, OutputNaming("", None, "png"), overwrite=True)
    verdicts = {p.item.path.name: (p.status, p.reason) for p in plan}
    assert verdicts["a.jpg"][0] == "failed" and "a.png" in verdicts["a.jpg"][1]
    assert verdicts["b.tif"] == (None, None)
    assert verdicts["b.tiff"][0] == "failed" and "also the output of" in verdicts["b.tiff"][1]


# ------------------------------------------------------------------------------- 2. unusable -o / --json


@pytest.mark.parametrize("where", ["parent-is-file", "is-folder"])
def test_an_unusable_json_path_is_one_usage_error_before_any_work(
    tmp_path: Path, bird: Path, trained_checkpoint: Path, where: str
) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    target = afile / "r.json" if where == "parent-is-file" else tmp_path
    out = tmp_path / "out"
    result = jdsr("upscale", bird, "-o", out, "--model", trained_checkpoint, "--json", target)
    assert result.exit_code == 2, result.output
    assert _lines(result.output) == [line for line in _lines(result.output) if line.startswith("error: --json ")]
    assert len(_lines(result.output)) == 1 and not out.exists()


# ------------------------------------------------------------------- 3-5. sizes and memory that cannot fit


def test_an_impossible_output_size_fails_its_file_and_the_batch_goes_on(
    tmp_path: Path, bird: Path, trained_checkpoint: Path
) -> None:
    tiny = tmp_path / "tiny.png"
    PILImage.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tiny)
    report = tmp_path / "r.json"
    result = jdsr("upscale", tiny, "-o", tmp_path / "o", "--width", 100000, "--model", trained_checkpoint,
                  "--json", report)
    assert result.exit_code == 1, result.output
    error = json.loads(report.read_text())["files"][0]["error"]
    assert "tiny.png" in error and "100000x100000" in error and "--max-pixels" in error
    assert "Traceback" not in result.output


def test_the_memory_check_refuses_an_output_that_cannot_fit(
    tmp_path: Path, bird: Path, trained_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import jdsr_cli.engine.memory as memory

    monkeypatch.setattr(memory, "available_host_memory", lambda: 100 * 1024)
    report = tmp_path / "r.json"
    result = jdsr("upscale", bird, "-o", tmp_path / "o", "--model", trained_checkpoint, "--json", report)
    assert result.exit_code == 1, result.output
    error = json.loads(report.read_text())["files"][0]["error"]
    assert "144x144" in error and "100.0 KiB is available" in error


@pytest.mark.parametrize("error", [
    MemoryError(),
    # what torch's CPU allocator raises (a RuntimeError), e.g. inside a resize of a huge image
    RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: you "
                 "tried to allocate 192000000000 bytes. Error code 12 (Cannot allocate memory)"),
], ids=["MemoryError", "torch-cpu-allocator"])
def test_out_of_memory_inside_one_file_fails_that_file_only(
    tmp_path: Path, data_dir: Path, trained_checkpoint: Path, monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    import jdsr_cli.commands.upscale as upscale

    real = upscale.upscale_image

    def flaky(image, *args, **kwargs):  # type: ignore[no-untyped-def]
        if image.width == 72:  # bird
            raise error
        return real(image, *args, **kwargs)

    monkeypatch.setattr(upscale, "upscale_image", flaky)
    lr = data_dir / "benchmark" / "Set5" / "LR_bicubic" / "X4"
    report = tmp_path / "r.json"
    result = jdsr("upscale", lr / "birdx4.png", lr / "babyx4.png", "-o", tmp_path / "o", "--model",
                  trained_checkpoint, "--json", report)
    assert result.exit_code == 1, result.output
    files = {Path(f["input"]).name: f for f in json.loads(report.read_text())["files"]}
    assert files["babyx4.png"]["status"] == "done"
    assert files["birdx4.png"]["status"] == "failed" and "out of memory" in files["birdx4.png"]["error"]
    assert "144x144" in files["birdx4.png"]["error"]


@pytest.mark.slow
def test_a_bomb_sized_one_bit_png_under_an_address_space_limit_fails_alone(
    tmp_path: Path, bird: Path, trained_checkpoint: Path
) -> None:
    """Issue case 5: a 10 KB 9000×9000 1-bit PNG whose ×2 output cannot fit in 4 GB of address space."""
    big = tmp_path / "big.png"
    PILImage.new("1", (9000, 9000), 1).save(big, optimize=True)
    assert big.stat().st_size < 100_000
    report = tmp_path / "r.json"
    code = "import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (4 << 30, resource.RLIM_INFINITY)); " \
           "from jdsr_cli.cli.main import main; sys.argv[0] = 'jdsr'; main()"
    result = subprocess.run(
        [sys.executable, "-c", code, "upscale", str(big), str(bird), "-o", str(tmp_path / "o"), "--model",
         str(trained_checkpoint), "--json", str(report)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    files = {Path(f["input"]).name: f for f in json.loads(report.read_text())["files"]}
    assert files["birdx4.png"]["status"] == "done"
    assert files["big.png"]["status"] == "failed" and "18000x18000" in files["big.png"]["error"]


# ------------------------------------------------------------------------------------ 6. broken weights


def test_a_checkpoint_with_nan_weights_fails_the_file_instead_of_writing_black(
    tmp_path: Path, bird: Path, trained_checkpoint: Path
) -> None:
    import torch

    from jdsr_cli.checkpoints.load import load_checkpoint
    from jdsr_cli.checkpoints.save import save_checkpoint

    loaded = load_checkpoint(trained_checkpoint)
    with torch.no_grad():
        for parameter in loaded.model.parameters():
            parameter.fill_(float("nan"))
    broken = save_checkpoint(tmp_path / "nan-model", loaded.model, loaded.config)
    report = tmp_path / "r.json"
    result = jdsr("upscale", bird, "-o", tmp_path / "o", "--model", broken, "--json", report)
    assert result.exit_code == 1, result.output
    error = json.loads(report.read_text())["files"][0]["error"]
    assert "birdx4.png" in error and "non-finite" in error
    assert not list((tmp_path / "o").glob("*.png"))


# ------------------------------------------------------------------------- 11. eval, and eval's options


def test_eval_skips_an_hr_image_too_small_for_the_scale_with_a_reason(tmp_path: Path, data_dir: Path) -> None:
    hr = tmp_path / "data" / "benchmark" / "Tiny" / "HR"
    hr.mkdir(parents=True)
    shutil.copy(data_dir / "benchmark" / "Set5" / "HR" / "bird.png", hr / "bird.png")
    PILImage.fromarray(np.zeros((3, 3, 3), np.uint8)).save(hr / "speck.png")
    result = jdsr("eval", "bicubic", "-s", 4, "--data", tmp_path / "data", "--sets", "Tiny")
    assert result.exit_code == 0, result.output
    assert "speck.png: 3x3 is too small to score at ×4" in result.output
    assert "Traceback" not in result.output


def test_eval_with_no_sets_is_a_usage_error(tmp_path: Path, data_dir: Path) -> None:
    result = jdsr("eval", "bicubic", "-s", 2, "--data", data_dir, "--sets", "")
    assert result.exit_code == 2 and "--sets" in result.output


# --------------------------------------------------------------------------------------- weak spots


def test_a_fifo_given_as_input_is_named_as_such(tmp_path: Path, trained_checkpoint: Path) -> None:
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    result = jdsr("upscale", fifo, "--model", trained_checkpoint)
    assert result.exit_code == 2 and "not a regular file (a FIFO)" in result.output


def test_a_suffix_with_a_path_separator_is_a_usage_error(tmp_path: Path, bird: Path, trained_checkpoint: Path) -> None:
    result = jdsr("upscale", bird, "-o", tmp_path / "o", "--suffix", "/../../x", "--model", trained_checkpoint)
    assert result.exit_code == 2 and "--suffix" in result.output and "path separator" in result.output
    assert not list(tmp_path.rglob("*.png"))


def test_inputs_are_never_taken_from_inside_the_output_folder(tmp_path: Path, bird: Path, trained_checkpoint: Path) -> None:
    pics = tmp_path / "pics"
    pics.mkdir()
    shutil.copy(bird, pics / "a.png")
    for _ in range(2):
        result = jdsr("upscale", pics, "-r", "-o", pics / "up", "--model", trained_checkpoint)
        assert result.exit_code == 0, result.output
    assert sorted(p.relative_to(pics).as_posix() for p in pics.rglob("*.png")) == ["a.png", "up/a_x2.png"]


def test_any_exception_in_one_file_is_that_files_failure_and_debug_shows_the_traceback(
    tmp_path: Path, data_dir: Path, trained_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import jdsr_cli.commands.upscale as upscale

    real = upscale.upscale_image

    def buggy(image, *args, **kwargs):  # type: ignore[no-untyped-def]
        if image.width == 72:
            raise ValueError("something unexpected")
        return real(image, *args, **kwargs)

    monkeypatch.setattr(upscale, "upscale_image", buggy)
    lr = data_dir / "benchmark" / "Set5" / "LR_bicubic" / "X4"
    args = ["upscale", lr / "birdx4.png", lr / "babyx4.png", "-o", tmp_path / "o", "--model", trained_checkpoint]
    result = jdsr(*args)
    assert result.exit_code == 1
    assert "birdx4.png: ValueError: something unexpected" in result.output and "Traceback" not in result.output
    assert (tmp_path / "o" / "babyx4_x2.png").is_file()
    debug = jdsr("--debug", *args, "--overwrite")
    assert "Traceback" in debug.output and "something unexpected" in debug.output


def test_stale_temp_files_of_ours_are_removed_and_others_kept(tmp_path: Path, bird: Path, trained_checkpoint: Path) -> None:
    from jdsr_cli.io.atomic import host_tag

    out = tmp_path / "o"
    out.mkdir()
    ours = out / f".birdx4_x2.png.jdsr-999999999-{host_tag()}-abc123.tmp"  # no such pid on this host
    theirs = out / ".something.tmp"
    ours.write_bytes(b"partial")
    theirs.write_bytes(b"not ours")
    assert jdsr("upscale", bird, "-o", out, "--model", trained_checkpoint).exit_code == 0
    assert not ours.exists() and theirs.exists()


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_batch_with_a_summary_a_report_and_no_temp_files(
    tmp_path: Path, data_dir: Path, trained_checkpoint: Path, signum: int
) -> None:
    src = tmp_path / "in"
    src.mkdir()
    for path in sorted((data_dir / "benchmark" / "Set14" / "HR").glob("*.png"))[:6]:
        shutil.copy(path, src / path.name)
    out, report = tmp_path / "out", tmp_path / "r.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "jdsr_cli", "upscale", str(src), "-o", str(out), "-m", str(trained_checkpoint),
         "--tile", "64", "--json", str(report)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as from a shell prompt; CI may ignore it
    )
    assert process.stdout is not None and process.stderr is not None
    while not (line := process.stdout.readline()).startswith("done"):
        assert line, "the batch ended before its first file was done"
    process.send_signal(signum)
    process.wait(timeout=120)
    stdout, stderr = process.stdout.read(), process.stderr.read()
    assert process.returncode == 128 + signum, stdout + stderr
    assert "not run (" in stdout and "Traceback" not in stderr
    payload = json.loads(report.read_text())
    assert payload["interrupted"] and payload["summary"]["done"] >= 1
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


# ------------------------------------------------------------------------- formats people have


@pytest.mark.parametrize("ext", ["gif", "png", "webp"])
def test_an_animation_is_upscaled_frame_by_frame_and_stays_an_animation(
    tmp_path: Path, data_dir: Path, trained_checkpoint: Path, ext: str
) -> None:
    from jdsr_cli.io.animation import Animation, read_frames

    lr = data_dir / "benchmark" / "Set5" / "LR_bicubic" / "X4"
    frames = [PILImage.open(lr / f"{name}x4.png").convert("RGB").crop((0, 0, 48, 40)) for name in ("bird", "baby", "head")]
    src = tmp_path / f"anim.{ext}"
    frames[0].save(src, save_all=True, append_images=frames[1:], duration=[100, 200, 300], loop=2)
    before = read_frames(src)
    assert isinstance(before, Animation)
    report = tmp_path / "r.json"
    result = jdsr("upscale", src, "-o", tmp_path / "o", "--model", trained_checkpoint, "--json", report)
    assert result.exit_code == 0, result.output
    after = read_frames(tmp_path / "o" / f"anim_x2.{ext}")
    assert isinstance(after, Animation)
    assert len(after.frames) == 3 and after.size == (96, 80)
    assert after.durations_ms == before.durations_ms and after.loop == before.loop
    assert json.loads(report.read_text())["files"][0]["frames"] == 3


def test_an_animation_written_to_a_still_format_keeps_its_first_frame_with_a_warning(
    tmp_path: Path, data_dir: Path, trained_checkpoint: Path
) -> None:
    lr = data_dir / "benchmark" / "Set5" / "LR_bicubic" / "X4"
    frames = [PILImage.open(lr / f"{name}x4.png").convert("RGB").crop((0, 0, 48, 40)) for name in ("bird", "baby")]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    result = jdsr("upscale", tmp_path / "anim.gif", "--format", "jpg", "--model", trained_checkpoint)
    assert result.exit_code == 0, result.output
    assert "only the first frame" in result.output and "(1 with warnings)" in result.output
    assert PILImage.open(tmp_path / "anim_x2.jpg").size == (96, 80)


def test_a_damaged_file_is_done_with_a_warning_or_failed_with_strict(
    tmp_path: Path, bird: Path, trained_checkpoint: Path
) -> None:
    data = bytearray(bird.read_bytes())
    idat = data.index(b"IDAT")
    data[idat + 4 + 10] ^= 0xFF  # one flipped byte inside the first IDAT chunk: its CRC no longer matches
    damaged = tmp_path / "damaged.png"
    damaged.write_bytes(bytes(data))
    report = tmp_path / "r.json"
    result = jdsr("upscale", damaged, "-o", tmp_path / "o", "--model", trained_checkpoint, "--json", report)
    record = json.loads(report.read_text())["files"][0]
    if record["status"] == "failed":  # the decoder could not go on at all
        assert "damaged.png" in record["error"]
        return
    assert result.exit_code == 0 and record["warnings"] and "warning:" in result.output
    strict = jdsr("upscale", damaged, "-o", tmp_path / "s", "--model", trained_checkpoint, "--strict")
    assert strict.exit_code == 1 and "damaged.png" in strict.output and "strict" in strict.output


def test_a_signal_while_a_line_is_printed_still_ends_the_batch_with_its_outcome(tmp_path: Path) -> None:
    """The race the subprocess tests hit under load: the signal lands inside a progress callback."""
    from jdsr_cli.commands.batch import OutputNaming, plan_batch, run_batch
    from jdsr_cli.commands.inputs import InputFile
    from jdsr_cli.errors import Interrupted

    items = [InputFile(tmp_path / f"{n}.png", Path(f"{n}.png")) for n in "abc"]
    plan = plan_batch(items, OutputNaming("_x2", tmp_path / "o", None))

    def on_done(report) -> None:  # type: ignore[no-untyped-def]
        raise Interrupted(signal.SIGTERM, "terminated (SIGTERM)")

    outcome = run_batch(plan, lambda item, output: {}, on_done=on_done)
    assert outcome.interrupted is not None and outcome.interrupted.exit_code == 143
    assert [r.status for r in outcome.reports] == ["done"] and outcome.not_run == 2


def test_an_output_too_large_for_its_format_fails_before_the_work(
    tmp_path: Path, trained_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """WebP stops at 16383 px a side: a 8200 px wide ×2 is refused up front; --outscale 1.5 fits and runs."""
    import jdsr_cli.commands.upscale as upscale

    wide = tmp_path / "wide.webp"
    PILImage.fromarray(np.full((4, 8200, 3), 128, np.uint8)).save(wide, lossless=True)
    real, ran = upscale.upscale_image, []

    def counting(image, *args, **kwargs):  # type: ignore[no-untyped-def]
        ran.append(image.width)
        return real(image, *args, **kwargs)

    monkeypatch.setattr(upscale, "upscale_image", counting)
    result = jdsr("upscale", wide, "-o", tmp_path / "o", "--model", trained_checkpoint)
    assert result.exit_code == 1, result.output
    assert "16400x8 is too large for WEBP (at most 16383 pixels a side); save it as PNG or TIFF" in result.output
    assert ran == [] and not (tmp_path / "o" / "wide_x2.webp").exists()
    fits = jdsr("upscale", wide, "-o", tmp_path / "o", "--model", trained_checkpoint, "--outscale", "1.5")
    assert fits.exit_code == 0, fits.output
    assert ran == [8200] and PILImage.open(tmp_path / "o" / "wide_x1.5.webp").size == (12300, 6)
