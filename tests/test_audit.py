"""The security audit's findings (docs: the audit of 2026-12-04), each reproduced as it was confirmed.

M1 (hostile model sizes) is tests/test_hostile_models.py, M3 (publish --dry-run) tests/test_publish.py and the swap's
kill window tests/test_checkpoint_swap.py; the rest is here.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from jdsr_cli.archs import REGISTRY, ArchConfig
from jdsr_cli.checkpoints.save import save_checkpoint
from jdsr_cli.cli.main import app

runner = CliRunner()
TINY = ArchConfig("fsrcnn", 2, {"d": 8, "s": 4, "m": 1})


def jdsr(*args: object):  # type: ignore[no-untyped-def]
    return runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "300"})


@pytest.fixture()
def image(tmp_path: Path) -> Path:
    path = tmp_path / "in.png"
    Image.new("RGB", (16, 16), (40, 90, 200)).save(path)
    return path


# ---------------------------------------------------------------------------------------------- M2


@pytest.fixture()
def stub_exporter(monkeypatch: pytest.MonkeyPatch) -> None:
    """The path logic of `models export` without onnxscript: the exporter and its parity check are stubbed."""
    import jdsr_cli.engine.onnx_export as export

    monkeypatch.setattr(export, "onnx_bytes", lambda loaded, **kwargs: b"onnx")
    monkeypatch.setattr(export, "OnnxNet", lambda data: None)
    monkeypatch.setattr(export, "parity", lambda loaded, runner: (0.0, math.inf))


@pytest.mark.parametrize("name", ["../../escaped/evil", "{tmp}/abs/evil", "..", "", "sub/..", "a\\..\\..\\evil"])
def test_export_without_o_writes_only_in_the_current_folder(tmp_path: Path, stub_exporter: None,
                                                             monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """M2: config.json's `name` chose where `jdsr models export MODEL` wrote (../../escaped/evil.onnx)."""
    name = name.format(tmp=tmp_path)
    save_checkpoint(tmp_path / "m" / "tiny", REGISTRY.build(TINY), TINY, name=name or "x")
    if not name:  # an empty name cannot be saved: write it into config.json as a downloaded file would have it
        import json

        config = tmp_path / "m" / "tiny" / "config.json"
        config.write_text(json.dumps({**json.loads(config.read_text()), "name": ""}))
    work = tmp_path / "m" / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    result = jdsr("models", "export", "../tiny")
    assert result.exit_code == 0, result.output
    written = [p for p in tmp_path.rglob("*.onnx")]
    assert len(written) == 1 and written[0].parent == work, written
    stem = written[0].stem
    assert stem not in ("", ".", "..") and "/" not in stem and "\\" not in stem
    assert stem == ("evil" if "evil" in name else "tiny")


# --------------------------------------------------------------------------------------- L4, L5, L10


def test_a_file_that_appears_after_planning_is_not_replaced(tmp_path: Path, image: Path) -> None:
    """L4: the skip was decided when the batch was planned; a file created later was replaced without --overwrite."""
    from jdsr_cli.commands.downscale_job import DownscaleRequest, prepare_downscale
    from jdsr_cli.commands.imagejob import run_image_job

    (tmp_path / "in").mkdir()
    for name in ("a.png", "b.png"):
        (tmp_path / "in" / name).write_bytes(image.read_bytes())
    out = tmp_path / "out"
    job = prepare_downscale(DownscaleRequest(inputs=[str(tmp_path / "in")], scale=2, output=out))

    def user_writes_b(index: int, planned: object) -> None:
        if index == 0:
            out.mkdir(exist_ok=True)
            (out / "b_down_x2.png").write_text("mine")

    outcome = run_image_job(job, on_start=user_writes_b)
    assert (out / "b_down_x2.png").read_text() == "mine"
    statuses = {Path(r.input).name: (r.status, r.error) for r in outcome.reports}
    assert statuses["a.png"][0] == "done"
    assert statuses["b.png"][0] == "skipped" and "--overwrite" in str(statuses["b.png"][1]), statuses
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
    with_overwrite = prepare_downscale(DownscaleRequest(inputs=[str(tmp_path / "in")], scale=2, output=out,
                                                        overwrite=True))
    assert [r.status for r in run_image_job(with_overwrite).reports] == ["done", "done"]
    assert (out / "b_down_x2.png").read_bytes()[:4] == b"\x89PNG"


def test_temp_files_of_another_host_are_not_removed(tmp_path: Path, image: Path) -> None:
    """L5: `.NAME.jdsr-PID-*.tmp` was removed whenever PID was not alive *here*: a live writer on another host
    sharing the folder lost its file. Only our host's dead writers' files go at once; others' after a day."""
    from jdsr_cli.io.atomic import host_tag

    out = tmp_path / "o"
    out.mkdir()
    elsewhere = out / ".in_down_x2.png.jdsr-4000000-abcd1234.tmp"  # the audit's: a name without a host
    other_host = out / f".in_down_x2.png.jdsr-4000000-{'0' * 8 if host_tag() != '0' * 8 else '1' * 8}-ab12cd34.tmp"
    ours_dead = out / f".in_down_x2.png.jdsr-4000000-{host_tag()}-ab12cd34.tmp"
    old = out / ".old_down_x2.png.jdsr-4000000-abcd1234.tmp"
    for path in (elsewhere, other_host, ours_dead, old):
        path.write_text("live")
    os.utime(old, (0, 0))  # untouched since 1970: nobody is writing it
    assert jdsr("downscale", image, "-s", "2", "-o", f"{out}/").exit_code == 0
    assert elsewhere.exists() and other_host.exists()
    assert not ours_dead.exists() and not old.exists()


def test_an_output_never_takes_setuid_bits(tmp_path: Path, image: Path) -> None:
    """L10: the mode came from stat (through a link) masked with 0o7777: replacing a link to a setuid file gave
    the output 6755."""
    target = tmp_path / "t.bin"
    target.write_bytes(image.read_bytes())
    os.chmod(target, 0o6755)
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "in_down_x2.png").symlink_to("../t.bin")
    result = jdsr("downscale", image, "-s", "2", "-o", f"{tmp_path / 's'}/", "--overwrite")
    assert result.exit_code == 0, result.output
    out = tmp_path / "s" / "in_down_x2.png"
    assert not out.is_symlink() and out.stat().st_mode & 0o7000 == 0
    assert target.stat().st_mode & 0o7777 == 0o6755  # the link's target is untouched
    plain = tmp_path / "plain.png"
    plain.write_bytes(b"x")
    os.chmod(plain, 0o4750)
    from jdsr_cli.io.atomic import atomic_write_bytes

    atomic_write_bytes(plain, b"y")
    assert plain.stat().st_mode & 0o7777 == 0o750


def test_a_checkpoint_swap_of_another_host_is_left_alone(tmp_path: Path) -> None:
    """L5 for checkpoints: a staging folder of a live save on another host (a run folder on shared storage) is
    neither removed nor rolled forward by a save or a load here."""
    from jdsr_cli.checkpoints.load import load_checkpoint
    from jdsr_cli.io.atomic import host_tag

    other = "0" * 8 if host_tag() != "0" * 8 else "1" * 8
    folder = tmp_path / "last"
    save_checkpoint(folder, REGISTRY.build(TINY), TINY)
    staging = tmp_path / f".last.jdsr-4000000-{other}-0123abcd.new"
    staging.mkdir()
    (staging / "model.safetensors").write_bytes(b"being written elsewhere")
    save_checkpoint(folder, REGISTRY.build(TINY), TINY)
    load_checkpoint(folder)
    assert (staging / "model.safetensors").read_bytes() == b"being written elsewhere"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([staging.name, "last"])
    from jdsr_cli.checkpoints.swap import replace_folder

    with replace_folder(folder) as ours:  # our own swaps carry this host's tag
        assert f"-{host_tag()}-" in ours.name


# ------------------------------------------------------------------------------------------- L1, L2


def _named_model(folder: Path, name: str) -> Path:
    import json

    save_checkpoint(folder, REGISTRY.build(TINY), TINY)
    config = folder / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "name": name}))
    return folder


@pytest.mark.parametrize("name", ["[/]", "[link=https://evil.example]click[/link]", "[reverse]x"])
def test_rich_markup_in_a_model_name_is_shown_as_is(tmp_path: Path, name: str) -> None:
    """L1: `models inspect` rendered config.json values as Rich markup: `[/]` crashed ("bug in jdsr", exit 1)."""
    model = _named_model(tmp_path / "mk", name)
    result = jdsr("models", "inspect", model)
    assert result.exit_code == 0, result.output
    assert name in result.output.replace("\n", "")


def test_rich_markup_in_eval_names_is_shown_as_is(tmp_path: Path) -> None:
    """L1 for `jdsr eval`: the model's name and the images' names went into a Rich table as markup."""
    hr = tmp_path / "data" / "benchmark" / "Set5" / "HR"
    hr.mkdir(parents=True)
    import numpy as np

    pixels = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(hr / "[bold]x.png")
    model = _named_model(tmp_path / "mk", "[/]")
    result = jdsr("eval", model, "--data", tmp_path / "data", "--sets", "Set5", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert "[bold]x" in result.output and "[/] on Set5" in result.output


def test_terminal_escapes_in_file_names_are_not_sent_to_the_terminal(tmp_path: Path, image: Path) -> None:
    """L2: a file name with ESC sequences (colour, window title) or a newline (a forged "done" line) was printed
    raw; now control characters are shown as \\xNN escapes."""
    folder = tmp_path / "esc"
    folder.mkdir()
    for name in ("\x1b[31mred.png", "\x1b]0;owned\x1b\\.png", "two\nlines.png"):
        (folder / name).write_bytes(image.read_bytes())
    result = jdsr("downscale", folder, "-s", "2", "-o", tmp_path / "eo")
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output and "\\x1b[31mred" in result.output
    lines = result.output.splitlines()
    assert not any(line.startswith("lines") for line in lines) and any("two\\x0alines" in line for line in lines)
    model = _named_model(tmp_path / "mk", "\x1b]0;title\x07name")
    shown = jdsr("models", "inspect", model)
    assert shown.exit_code == 0 and "\x1b" not in shown.output and "\x07" not in shown.output


# ---------------------------------------------------------------------------------------------- L3


def test_a_quoted_recursive_glob_does_not_follow_symlink_loops(tmp_path: Path, image: Path) -> None:
    """L3: glob.glob(recursive=True) followed symlinked folders: two links to `.` never finished (exit 124 under
    `timeout 15`); the folder form (pathlib) was fine, and the quoted glob now walks the same way."""
    import subprocess
    import sys

    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "a.png").write_bytes(image.read_bytes())
    (tree / "sub" / "b.png").write_bytes(image.read_bytes())
    (tree / ".hidden").mkdir()
    (tree / ".hidden" / "c.png").write_bytes(image.read_bytes())
    (tree / "l1").symlink_to(".")
    (tree / "l2").symlink_to(".")
    run = subprocess.run([sys.executable, "-m", "jdsr_cli", "downscale", "tree/**/*.png", "-r", "-s", "2", "-o",
                          "out/"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_down_x2.png", "b_down_x2.png"]


# ---------------------------------------------------------------------------------------------- L6


def test_a_new_run_does_not_replace_a_users_config_toml(tmp_path: Path) -> None:
    """L6: `jdsr train --config proj/config.toml --out proj` replaced the user's config.toml with the run's."""
    from jdsr_cli.errors import UsageError
    from jdsr_cli.training.config import load_config
    from jdsr_cli.training.resume import check_new_run_folder

    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "config.toml").write_text("# mine\nscale = 2\n")
    with pytest.raises(UsageError, match=r"--out .*proj: holds a config\.toml that no jdsr run wrote"):
        check_new_run_folder(proj)
    assert (proj / "config.toml").read_text() == "# mine\nscale = 2\n"
    stopped = tmp_path / "stopped"  # a run stopped before its first save: starting it again is fine
    stopped.mkdir()
    config = load_config(None, {"data": str(tmp_path), "scale": 2, "arch": "fsrcnn", "out": str(stopped)})
    (stopped / "config.toml").write_text(config.to_toml())
    check_new_run_folder(stopped)
    assert load_config(stopped / "config.toml", {}).scale == 2


# ---------------------------------------------------------------------------------------------- L7


def test_json_replaces_only_an_earlier_report(tmp_path: Path, image: Path) -> None:
    """L7: `--json notes.txt` replaced any existing file not named like an image."""
    notes = tmp_path / "notes.txt"
    notes.write_text("notes\n")
    result = jdsr("downscale", image, "-s", "2", "-o", tmp_path / "jo", "--json", notes)
    assert result.exit_code == 2 and "notes.txt" in result.output and "not a jdsr report" in result.output
    assert notes.read_text() == "notes\n" and not (tmp_path / "jo").exists()
    (tmp_path / "config.json").write_text('{"arch": "imdn"}')  # a JSON file of the user's is not a report either
    assert jdsr("downscale", image, "-s", "2", "-o", tmp_path / "jo", "--json", tmp_path / "config.json"
                ).exit_code == 2
    report = tmp_path / "r.json"
    for _ in range(2):  # a new report, then one over the earlier report
        result = jdsr("downscale", image, "-s", "2", "-o", tmp_path / "jo", "--json", report, "--overwrite")
        assert result.exit_code == 0, result.output
    import json

    assert json.loads(report.read_text())["summary"]["done"] == 1


def test_models_export_replaces_a_file_only_with_overwrite(tmp_path: Path, stub_exporter: None,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """L7: `models export -o X.onnx` replaced an existing file (another model's export, a cache entry) silently."""
    model = save_checkpoint(tmp_path / "m" / "tiny", REGISTRY.build(TINY), TINY)
    mine = tmp_path / "mine.onnx"
    mine.write_bytes(b"mine")
    result = jdsr("models", "export", model, "-o", mine)
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
    assert str(mine) in result.output and "--overwrite" in result.output
    assert mine.read_bytes() == b"mine"
    monkeypatch.chdir(tmp_path)  # the default name in the current folder is refused the same way
    (tmp_path / "tiny.onnx").write_bytes(b"mine")
    assert jdsr("models", "export", model).exit_code == 2 and (tmp_path / "tiny.onnx").read_bytes() == b"mine"
    result = jdsr("models", "export", model, "-o", mine, "--overwrite")
    assert result.exit_code == 0, result.output
    assert mine.read_bytes() == b"onnx"


def _tiny_set(root: Path) -> Path:
    import numpy as np

    hr = root / "benchmark" / "Tiny" / "HR"
    hr.mkdir(parents=True)
    for i in range(2):
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(hr / f"{i}.png")
    return root


def test_eval_save_images_replaces_an_image_only_with_overwrite(tmp_path: Path) -> None:
    """L7: `eval --save-images DIR` replaced the SR images of an earlier run (or anything so named) silently."""
    data = _tiny_set(tmp_path / "data")
    args = ["eval", "bicubic", "-s", "2", "--data", data, "--sets", "Tiny", "--save-images", tmp_path / "sr"]
    assert jdsr(*args).exit_code == 0
    kept = tmp_path / "sr" / "Tiny" / "1_x2.png"
    kept.write_bytes(b"mine")
    (tmp_path / "sr" / "Tiny" / "0_x2.png").unlink()
    result = jdsr(*args)
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
    assert str(kept) in result.output and "--overwrite" in result.output
    assert kept.read_bytes() == b"mine" and not (tmp_path / "sr" / "Tiny" / "0_x2.png").exists()  # nothing scored
    result = jdsr(*args, "--overwrite")
    assert result.exit_code == 0, result.output
    assert kept.read_bytes()[:4] == b"\x89PNG"


def test_an_sr_image_that_appears_during_eval_is_not_replaced(tmp_path: Path) -> None:
    """L4 for eval: the check is made before scoring; a file that appears afterwards is not replaced either."""
    from jdsr_cli.commands.evaluate_job import EvalRequest, prepare_eval
    from jdsr_cli.errors import ImageWriteError

    data = _tiny_set(tmp_path / "data")
    job = prepare_eval(EvalRequest("bicubic", data=data, sets="Tiny", scale=2, save_images=tmp_path / "sr",
                                   device="cpu"))
    late = tmp_path / "sr" / "Tiny" / "1_x2.png"
    late.parent.mkdir(parents=True)
    late.write_bytes(b"mine")
    with pytest.raises(ImageWriteError, match="1_x2.png"):
        list(job.run())
    assert late.read_bytes() == b"mine"


# ---------------------------------------------------------------------------------------------- L9


def test_credentials_in_hf_endpoint_are_never_printed(tmp_path: Path, image: Path) -> None:
    """L9: error lines printed HF_ENDPOINT verbatim: `...reached at http://user:s3cret@127.0.0.1:9...`."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    env.update(HF_HOME=str(tmp_path / "hf"), HF_ENDPOINT="http://user:s3cret@127.0.0.1:9", NO_PROXY="127.0.0.1")
    for args in (["upscale", str(image), "-o", str(tmp_path / "o.png"), "--model", "hf://owner/repo/model.safetensors"],
                 ["doctor"]):
        run = subprocess.run([sys.executable, "-m", "jdsr_cli", *args], env=env, capture_output=True, text=True,
                             timeout=120)
        output = run.stdout + run.stderr
        assert "s3cret" not in output, output
    assert "127.0.0.1:9" in output


# ----------------------------------------------------------------------------- the matrix's last weak spots


def test_a_training_folder_of_unreadable_images_names_them(tmp_path: Path) -> None:
    """`jdsr train` said "none of the 3 images is usable (3 unreadable)" without naming one of them."""
    data = tmp_path / "photos"
    data.mkdir()
    for name in ("a.png", "b.jpg", "c.webp"):
        (data / name).write_bytes(b"not an image")
    result = jdsr("train", data, "-s", "2", "--arch", "fsrcnn", "--steps", "1", "--out", tmp_path / "run")
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert "3 unreadable" in lines[0] and all(name in lines[0] for name in ("a.png", "b.jpg", "c.webp")), lines[0]


def test_eval_names_the_image_too_small_to_score(tmp_path: Path) -> None:
    """`jdsr eval` on a set whose only HR is too small said "1 too small to score" without naming it."""
    hr = tmp_path / "data" / "benchmark" / "Tiny" / "HR"
    hr.mkdir(parents=True)
    Image.new("RGB", (6, 6)).save(hr / "speck.png")
    model = save_checkpoint(tmp_path / "m", REGISTRY.build(TINY), TINY)
    result = jdsr("eval", model, "--data", tmp_path / "data", "--sets", "Tiny", "--device", "cpu")
    assert result.exit_code == 2 and "too small to score" in result.output and "speck.png" in result.output, \
        result.output


def test_eval_says_when_a_png_checksum_is_wrong(tmp_path: Path) -> None:
    """A PNG's chunk CRC is the checksum JPEG and WebP lack: `jdsr eval` read a damaged HR without a word."""
    import numpy as np

    hr = tmp_path / "data" / "benchmark" / "Set5" / "HR"
    hr.mkdir(parents=True)
    pixels = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(hr / "bird.png")
    data = bytearray((hr / "bird.png").read_bytes())
    at = data.find(b"IDAT")
    length = int.from_bytes(data[at - 4:at], "big")
    data[at + 4 + length] ^= 0xFF  # the IDAT chunk's CRC: the pixels still decode
    (hr / "bird.png").write_bytes(bytes(data))
    model = save_checkpoint(tmp_path / "m", REGISTRY.build(TINY), TINY)
    result = jdsr("eval", model, "--data", tmp_path / "data", "--sets", "Set5", "--device", "cpu")
    assert result.exit_code == 0, result.output
    warning = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "bird.png" in warning[0] and "bad CRC" in warning[0], result.output



def test_train_leaves_out_a_png_whose_checksum_is_wrong_and_names_it(tmp_path: Path) -> None:
    """`jdsr train` learned from a PNG with a bad chunk CRC without a word; damaged pixels are now left out,
    with the file and the reason on the skipped line, and the good images still train."""
    import numpy as np

    data, val = tmp_path / "photos", tmp_path / "val"
    data.mkdir()
    val.mkdir()
    rng = np.random.default_rng(0)
    for path in (data / "good.png", data / "bad.png", val / "held.png"):
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path)
    damaged = bytearray((data / "bad.png").read_bytes())
    at = damaged.find(b"IDAT")
    damaged[at + 4 + int.from_bytes(damaged[at - 4:at], "big")] ^= 0xFF  # the IDAT CRC: the pixels still decode
    (data / "bad.png").write_bytes(bytes(damaged))
    result = jdsr("train", data, "-s", "2", "--arch", "fsrcnn", "--steps", "1", "--patch-size", "16",
                  "--batch-size", "1", "--val", val, "--precision", "fp32", "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    skipped = [line for line in result.output.splitlines() if line.startswith("skipped:")]
    assert len(skipped) == 1 and "bad.png" in skipped[0] and "bad CRC" in skipped[0], result.output


# ---------------------------------------------------------------------------------------------- L8


def test_sha256_is_checked_where_it_is_recorded_and_the_docs_say_only_there(tmp_path: Path) -> None:
    """L8: the README promised "checkpoints are verified against their sha256", but only a config.json (or
    manifest) that records one can be checked; the promise now says exactly that."""
    import json

    from jdsr_cli.checkpoints.load import load_checkpoint
    from jdsr_cli.errors import ModelLoadError

    folder = save_checkpoint(tmp_path / "copy", REGISTRY.build(TINY), TINY)
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0x01  # tensor data: still a valid file
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match="sha256 mismatch"):
        load_checkpoint(folder)
    config = json.loads((folder / "config.json").read_text())
    del config["weights_sha256"]
    (folder / "config.json").write_text(json.dumps(config))
    load_checkpoint(folder)  # nothing recorded, nothing to check against
    root = Path(__file__).resolve().parents[1]
    docs = " ".join(p.read_text(encoding="utf-8") for p in [root / "README.md", *sorted((root / "docs").rglob("*.md"))])
    docs = " ".join(docs.split())
    assert "checkpoints are verified against their sha256" not in docs
    assert "without `weights_sha256`, has nothing to be checked against" in docs
