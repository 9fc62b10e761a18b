"""``-o NAME.EXT``: the one output's file name, not a folder of that name (a folder stays a folder)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image as PILImage
from typer.testing import CliRunner

from jdsr_cli.cli.main import app

runner = CliRunner()


def jdsr(*args: object):  # type: ignore[no-untyped-def]
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture()
def small(tmp_path: Path) -> Path:
    path = tmp_path / "small.png"
    PILImage.new("RGB", (24, 16), (200, 120, 40)).save(path)
    return path


def test_upscale_writes_the_named_file_in_its_format(tmp_path: Path, small: Path, trained_checkpoint: Path) -> None:
    target = tmp_path / "out" / "big.jpg"
    result = jdsr("upscale", small, "-o", target, "--model", trained_checkpoint)
    assert result.exit_code == 0, result.output
    assert target.is_file()
    with PILImage.open(target) as written:
        assert written.format == "JPEG" and written.size == (48, 32)
    assert sorted(p.name for p in target.parent.iterdir()) == ["big.jpg"]


def test_an_existing_output_file_is_skipped_unless_overwrite(
    tmp_path: Path, small: Path, trained_checkpoint: Path
) -> None:
    target = tmp_path / "big.png"
    target.write_bytes(b"keep me")
    skipped = jdsr("upscale", small, "-o", target, "--model", trained_checkpoint)
    assert skipped.exit_code == 0 and "output exists" in skipped.output
    assert target.read_bytes() == b"keep me"
    replaced = jdsr("upscale", small, "-o", target, "--model", trained_checkpoint, "--overwrite")
    assert replaced.exit_code == 0, replaced.output
    with PILImage.open(target) as written:
        assert written.size == (48, 32)


def test_an_existing_folder_with_an_image_extension_stays_a_folder(
    tmp_path: Path, small: Path, trained_checkpoint: Path
) -> None:
    folder = tmp_path / "odd.png"
    folder.mkdir()
    result = jdsr("upscale", small, "-o", folder, "--model", trained_checkpoint)
    assert result.exit_code == 0, result.output
    assert (folder / "small_x2.png").is_file()


def test_downscale_writes_the_named_file(tmp_path: Path, small: Path) -> None:
    target = tmp_path / "half.webp"
    result = jdsr("downscale", small, "-s", 2, "-o", target)
    assert result.exit_code == 0, result.output
    with PILImage.open(target) as written:
        assert written.format == "WEBP" and written.size == (12, 8)


@pytest.mark.parametrize(
    ("name", "extra", "message"),
    [
        ("x.png", ["--format", "webp"], "a PNG file name, but --format webp"),
        ("x.png", ["--suffix", "_a"], "already names the output file"),
        ("x.jpg", ["--lossless"], "cannot be saved losslessly"),
    ],
)
def test_options_that_contradict_the_file_name_are_refused(
    tmp_path: Path, small: Path, name: str, extra: list[str], message: str
) -> None:
    result = jdsr("upscale", small, "-o", tmp_path / name, *extra)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small.png"]


def test_one_file_name_for_several_inputs_is_refused_before_any_work(tmp_path: Path, small: Path) -> None:
    other = tmp_path / "other.png"
    PILImage.new("RGB", (24, 16), "blue").save(other)
    result = jdsr("upscale", small, other, "-o", tmp_path / "both.png")
    assert result.exit_code == 2
    assert "names one output file, but 2 images were found" in result.output
    assert not (tmp_path / "both.png").exists()


def test_the_input_itself_is_never_the_output(tmp_path: Path, small: Path, trained_checkpoint: Path) -> None:
    before = small.read_bytes()
    result = jdsr("upscale", small, "-o", small, "--model", trained_checkpoint, "--overwrite")
    assert result.exit_code == 1
    assert "would replace the input itself" in result.output
    assert small.read_bytes() == before
