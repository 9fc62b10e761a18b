"""`jdsr` end to end through the CLI: batches of real photos, bad inputs, naming, reports, exit codes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from typer.testing import CliRunner

from jdsr_cli.cli.main import app

runner = CliRunner()


def jdsr(*args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture()
def photo_tree(tmp_path: Path, data_dir: Path) -> Path:
    """A messy folder: real photos (some nested), plus corrupt, truncated, empty and non-image files."""
    root = tmp_path / "photos"
    (root / "trip" / "day2").mkdir(parents=True)
    lr = data_dir / "benchmark" / "Set5" / "LR_bicubic" / "X4"
    shutil.copy(lr / "birdx4.png", root / "bird.png")
    shutil.copy(lr / "headx4.png", root / "trip" / "head.png")
    PILImage.open(lr / "womanx4.png").save(root / "trip" / "day2" / "woman.jpg", quality=92)
    (root / "empty.png").write_bytes(b"")
    (root / "notes.png").write_text("not an image at all")
    data = (lr / "babyx4.png").read_bytes()
    (root / "trip" / "truncated.png").write_bytes(data[: len(data) // 2])
    (root / "readme.txt").write_text("ignored: not an image extension")
    return root


def test_folder_batch_mirrors_tree_and_reports_bad_files(photo_tree: Path, tmp_path: Path, trained_checkpoint: Path) -> None:
    out = tmp_path / "out"
    report_path = tmp_path / "report.json"
    result = jdsr("upscale", photo_tree, "-r", "-o", out, "--model", trained_checkpoint, "--json", report_path)
    assert result.exit_code == 1, result.output
    produced = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert produced == ["bird_x2.png", "trip/day2/woman_x2.jpg", "trip/head_x2.png"]
    assert PILImage.open(out / "bird_x2.png").size == (2 * 72, 2 * 72)
    report = json.loads(report_path.read_text())
    assert report["summary"] == {"done": 3, "skipped": 0, "failed": 3, "total": 6}
    failed = {Path(f["input"]).name: f["error"] for f in report["files"] if f["status"] == "failed"}
    assert set(failed) == {"empty.png", "notes.png", "truncated.png"}
    for name, error in failed.items():
        assert name in error and "\n" not in error
    done = [f for f in report["files"] if f["status"] == "done"]
    for record in done:
        assert {"input", "output", "size_in", "size_out", "seconds", "device", "tile", "status", "error"} <= set(record)
    assert not list(out.rglob("*.tmp")) and not list(out.rglob(".*"))

    again = jdsr("upscale", photo_tree, "-r", "-o", out, "--model", trained_checkpoint, "--json", report_path)
    assert json.loads(report_path.read_text())["summary"]["skipped"] == 3, again.output
    forced = jdsr("upscale", photo_tree / "bird.png", "-o", out, "--model", trained_checkpoint, "--overwrite")
    assert forced.exit_code == 0 and "1 done" in forced.output


def test_next_to_input_default_name_suffix_format(tmp_path: Path, data_dir: Path, trained_checkpoint: Path) -> None:
    src = tmp_path / "bird.png"
    shutil.copy(data_dir / "benchmark" / "Set5" / "LR_bicubic" / "X4" / "birdx4.png", src)
    assert jdsr("upscale", src, "--model", trained_checkpoint).exit_code == 0
    assert (tmp_path / "bird_x2.png").is_file()
    result = jdsr("upscale", src, "--model", trained_checkpoint, "--suffix", "-big", "--format", "webp",
                  "--outscale", "3", "--tile", "32")
    assert result.exit_code == 0, result.output
    assert PILImage.open(tmp_path / "bird-big.webp").size == (216, 216)
    glob_result = jdsr("upscale", str(tmp_path / "bird.*"), "--model", trained_checkpoint, "--overwrite")
    assert glob_result.exit_code == 0 and "1 done" in glob_result.output


def test_fail_fast_stops_at_first_failure(photo_tree: Path, tmp_path: Path, trained_checkpoint: Path) -> None:
    result = jdsr("upscale", photo_tree, "-o", tmp_path / "o", "--model", trained_checkpoint, "--fail-fast")
    assert result.exit_code == 1
    assert "not run (--fail-fast)" in result.output


def test_unusable_output_folder_is_one_usage_error_before_any_work(
    tmp_path: Path, data_dir: Path, trained_checkpoint: Path
) -> None:
    """`-o afile/sub` used to print one failure per input and exit 1: now one line naming -o, exit 2."""
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder should be")
    lr = data_dir / "benchmark" / "Set5" / "LR_bicubic" / "X4"
    report = tmp_path / "r.json"
    result = jdsr("upscale", lr / "birdx4.png", lr / "babyx4.png", "-o", blocker / "sub", "--model",
                  trained_checkpoint, "--json", report)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: -o ") and "blocker" in lines[0], result.output
    assert not report.exists()


@pytest.mark.parametrize("command", ["upscale", "downscale"])
def test_a_report_named_like_an_image_is_refused_and_the_image_kept(tmp_path: Path, trained_checkpoint: Path,
                                                                    command: str) -> None:
    """`--json photo.png` replaced the photo with the JSON report."""
    photo = tmp_path / "photo.png"
    PILImage.fromarray(np.zeros((8, 8, 3), np.uint8)).save(photo)
    before = photo.read_bytes()
    extra = ["--model", trained_checkpoint] if command == "upscale" else ["-s", "2"]
    result = jdsr(command, photo, "-o", tmp_path / "out", *extra, "--json", photo)
    assert result.exit_code == 2, result.output
    assert f"--json {photo}: an image's file name; the report is JSON" in result.output
    assert photo.read_bytes() == before and not (tmp_path / "out").exists()


def test_sixteen_bit_and_metadata_survive_the_cli(tmp_path: Path, trained_checkpoint: Path) -> None:
    from PIL import ImageCms

    from jdsr_cli.io.image import Image, read_image, write_image

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 65536, (24, 20, 3)).astype(np.float32) / 65535
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = PILImage.Exif()
    exif[0x010F] = "jdsr-test-camera"
    src = tmp_path / "deep.png"
    write_image(src, Image(pixels=pixels, bit_depth=16, icc_profile=icc, exif=exif.tobytes(), source_format="PNG"))
    assert jdsr("upscale", src, "--model", trained_checkpoint).exit_code == 0
    out = read_image(tmp_path / "deep_x2.png")
    assert out.bit_depth == 16 and out.pixels.shape == (48, 40, 3)
    levels = np.round(out.pixels * 65535).astype(np.int64)
    assert np.any(levels % 257 != 0), "16-bit output must not be 8-bit data scaled up"
    assert out.icc_profile == icc
    assert out.exif is not None and b"jdsr-test-camera" in out.exif
    assert jdsr("upscale", src, "--model", trained_checkpoint, "--suffix", "_s", "--strip-metadata").exit_code == 0
    stripped = read_image(tmp_path / "deep_s.png")
    assert stripped.icc_profile is None and stripped.exif is None


@pytest.mark.parametrize(
    "args,message",
    [
        (["nope.png"], "no such file"),
        (["{img}", "--tile", "big"], "--tile"),
        (["{img}", "-s", "5"], "--scale 5"),
        (["{img}", "--outscale", "2", "--width", "100"], "--outscale"),
        (["{img}", "--device", "tpu"], "--device"),
        (["{img}", "--precision", "fp16", "--device", "cpu"], "fp16"),
        (["{img}", "--alpha", "sometimes"], "--alpha"),
        (["{img}", "--format", "jxl"], "--format"),
        (["{img}", "-s", "4"], "×2 model"),
        (["{img}", "--model", "no-such-model"], "no-such-model"),
    ],
)
def test_usage_errors_exit_2_with_one_line(tmp_path: Path, data_dir: Path, trained_checkpoint: Path,
                                            args: list[str], message: str) -> None:
    img = data_dir / "benchmark" / "Set5" / "LR_bicubic" / "X4" / "birdx4.png"
    argv = [a.replace("{img}", str(img)) for a in args]
    if "--model" not in argv:
        argv += ["--model", str(trained_checkpoint)]
    result = jdsr("upscale", *argv, "-o", tmp_path / "o")  # never next to the shared images, even on a regression
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_models_list_shows_every_bundled_model_with_its_figures_in_80_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    from jdsr_cli.checkpoints.manifest import load_manifest

    monkeypatch.setenv("COLUMNS", "80")
    listed = jdsr("models", "list")
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    assert all(len(line) <= 80 for line in lines[:-1]), listed.output  # the table fits; the legend is one long line
    assert "PSNR-Y dB, crop = scale" in lines[-1]
    for entry in load_manifest().entries:
        row = next(line for line in lines if line.split(" ", 1)[0] == entry.name)
        for name in ("Set5", "Set14", "B100"):
            figure = (entry.metrics or {}).get(name)
            assert (f"{figure['psnr']:.2f}" if figure else " -") in row, (entry.name, name, row)
        expected = {"imdn-small": " KD ", "imdn": " L1 ", "span": " L1 ", "photo-faithful": " L1 real ",
                    "photo": " sharp ", "slr": " SLR "}
        assert next(tag for prefix, tag in expected.items() if entry.name.startswith(prefix)) in row, row  # how trained


def test_models_info_tells_the_whole_recipe_from_the_checkpoint() -> None:
    import json

    shown = jdsr("models", "info", "imdn-x4")
    assert shown.exit_code == 0, shown.output
    training = json.loads(shown.output)["training"]
    assert training["method"] == "supervised" and len(training["stages"]) == 4  # 3 trainings, then made static
    assert training["total_steps"] == sum(stage["steps"] for stage in training["stages"]) == 17000
    assert training["stages"][-2]["command"] == "jdsr train --config configs/imdn-x4-ft2.toml"
    assert training["stages"][-1]["command"].startswith("freeze_cca.py imdn-x4")


def test_models_and_doctor_commands(trained_checkpoint: Path) -> None:
    inspected = jdsr("models", "inspect", trained_checkpoint)
    assert inspected.exit_code == 0 and "edsr" in inspected.output, inspected.output
    assert jdsr("models", "inspect", "/no/such/file.pth").exit_code == 2  # could not start: no such model
    doctor = jdsr("doctor")
    assert doctor.exit_code == 0 and "torch" in doctor.output and "HF cache" in doctor.output


def test_python_dash_m_entry_point() -> None:
    result = subprocess.run([sys.executable, "-m", "jdsr_cli", "--version"], capture_output=True, text=True, check=False)
    assert result.returncode == 0 and result.stdout.startswith("jdsr ")


def test_unwritable_input_format_falls_back_to_png_and_opaque_alpha_goes_to_jpeg(
    tmp_path: Path, data_dir: Path, trained_checkpoint: Path
) -> None:
    src = PILImage.open(data_dir / "benchmark" / "Set5" / "LR_bicubic" / "X4" / "birdx4.png")
    src.save(tmp_path / "portable.ppm")
    src.convert("RGBA").save(tmp_path / "opaque.png")
    assert jdsr("upscale", tmp_path / "portable.ppm", "--model", trained_checkpoint).exit_code == 0
    assert (tmp_path / "portable_x2.png").is_file()
    result = jdsr("upscale", tmp_path / "opaque.png", "--model", trained_checkpoint, "--format", "jpg")
    assert result.exit_code == 0, result.output
    assert PILImage.open(tmp_path / "opaque_x2.jpg").mode == "RGB"
    rgba = np.array(src.convert("RGBA"))
    rgba[:10, :10, 3] = 0
    PILImage.fromarray(rgba).save(tmp_path / "holes.png")
    refused = jdsr("upscale", tmp_path / "holes.png", "--model", trained_checkpoint, "--format", "jpg")
    assert refused.exit_code == 1 and "alpha" in refused.output


def test_upscale_does_not_import_training_code(tmp_path: Path, data_dir: Path, trained_checkpoint: Path) -> None:
    src = data_dir / "benchmark" / "Set5" / "LR_bicubic" / "X4" / "birdx4.png"
    code = (
        "import sys\n"
        "from jdsr_cli.cli.main import app\n"
        f"try:\n    app(['upscale', {str(src)!r}, '-o', {str(tmp_path)!r}, '--model', {str(trained_checkpoint)!r}, '-q'])\n"
        "except SystemExit as e:\n    assert e.code == 0, e.code\n"
        "print(sorted(m for m in sys.modules if m.startswith('jdsr_cli.training')))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_alpha_through_the_cli_keeps_colour_channels(tmp_path: Path, data_dir: Path, trained_checkpoint: Path) -> None:
    rgb = np.array(PILImage.open(data_dir / "benchmark" / "Set5" / "LR_bicubic" / "X4" / "birdx4.png"))
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    rgba[:20, :20, 3] = 0
    PILImage.fromarray(rgba).save(tmp_path / "cut.png")
    for mode, expected in (("discard", "RGB"), ("auto", "RGBA"), ("bicubic", "RGBA")):
        result = jdsr(
            "upscale", tmp_path / "cut.png", "--model", trained_checkpoint, "--alpha", mode, "--suffix", f"_{mode}"
        )
        assert result.exit_code == 0, result.output
        out = PILImage.open(tmp_path / f"cut_{mode}.png")
        assert out.mode == expected and out.size == (144, 144)
        colour = np.asarray(out.convert("RGB"), dtype=np.float64)[60:100, 60:100]
        reference = np.asarray(PILImage.fromarray(rgb).resize((144, 144), PILImage.BICUBIC), dtype=np.float64)
        reference = reference[60:100, 60:100]
        assert np.abs(colour - reference).mean() < 6, f"{mode}: colour channels changed"
        if expected == "RGBA":
            alpha = np.asarray(out)[..., 3]
            assert alpha[:30, :30].mean() < 40 and alpha[60:, 60:].min() > 200


def test_scale_ambiguous_foreign_weights_need_dash_s(tmp_path: Path, data_dir: Path) -> None:
    """PAN ×2 and ×3 weights are identical in shape: without -s the command refuses to guess."""
    import torch

    from jdsr_cli.archs import REGISTRY
    from jdsr_cli.archs.registry import ArchConfig

    torch.save({"params_ema": REGISTRY.build(ArchConfig("pan", 3, {})).state_dict()}, tmp_path / "pan.pth")
    src = data_dir / "benchmark" / "Set5" / "LR_bicubic" / "X4" / "birdx4.png"
    refused = jdsr("upscale", src, "-o", tmp_path, "--model", tmp_path / "pan.pth")
    assert refused.exit_code == 2 and "-s" in refused.output, refused.output
    done = jdsr("upscale", src, "-o", tmp_path, "--model", tmp_path / "pan.pth", "-s", "3")
    assert done.exit_code == 0, done.output
    assert PILImage.open(tmp_path / "birdx4_x3.png").size == (216, 216)


@pytest.mark.slow
def test_torchrun_shards_upscale_over_ranks(tmp_path: Path, data_dir: Path, trained_checkpoint: Path) -> None:
    import os

    src = tmp_path / "in"
    src.mkdir()
    for name in ("baby", "bird", "head", "woman", "butterfly"):
        shutil.copy(data_dir / "benchmark" / "Set5" / "LR_bicubic" / "X4" / f"{name}x4.png", src)
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1", "--nproc_per_node", "2",
         "-m", "jdsr_cli", "upscale", str(src), "-o", str(tmp_path / "out"), "--model", str(trained_checkpoint),
         "--json", str(tmp_path / "report.json"), "-q"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(list((tmp_path / "out").glob("*_x2.png"))) == 5
    reports = [json.loads((tmp_path / f"report.rank{r}.json").read_text()) for r in (0, 1)]
    inputs = [sorted(Path(f["input"]).name for f in rep["files"]) for rep in reports]
    assert [len(i) for i in inputs] == [3, 2] and not set(inputs[0]) & set(inputs[1])



def test_train_help_names_every_upscaler_architecture() -> None:
    """The --arch help is static (no registry import at start-up): it must follow the registry."""
    from jdsr_cli.archs import REGISTRY
    from jdsr_cli.cli.train_cmd import ARCH_HELP

    missing = [name for name in REGISTRY.names() if name != "slr-encoder" and name not in ARCH_HELP]
    assert not missing, f"--arch help lacks {missing}"


def test_live_bars_show_time_left_and_the_writing_phase(tmp_path: Path, trained_checkpoint: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """On a terminal: a file bar, a tile bar with the time left, and 'writing' once the last tile is done."""
    import io

    from rich.console import Console

    from jdsr_cli.cli import batch_cmd
    from jdsr_cli.cli import console as console_module
    from jdsr_cli.commands.upscale_job import UpscaleRequest, prepare_upscale

    PILImage.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    job = prepare_upscale(UpscaleRequest(inputs=[str(tmp_path / "a.png")], output=tmp_path / "out",
                                         model=str(trained_checkpoint), tile=32, tile_overlap=4, batch_size=1))
    monkeypatch.setattr(console_module.sys.stdout, "isatty", lambda: True, raising=False)
    screen = io.StringIO()
    terminal = Console(file=screen, force_terminal=True, width=120)
    outcome = batch_cmd._run_with_progress(terminal, job, False, lambda details: "", None)
    assert outcome.count("done") == 1
    text = screen.getvalue()
    assert "tiles done, writing" in text and " left " in text and "a.png" in text
