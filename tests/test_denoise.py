"""``--denoise``: weight interpolation between a clean and a photo model of one architecture (issue 17)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from jdsr_cli.archs import REGISTRY, ArchConfig
from jdsr_cli.checkpoints.interpolate import interpolate
from jdsr_cli.checkpoints.resolve import resolve_model
from jdsr_cli.checkpoints.save import save_checkpoint
from jdsr_cli.cli.main import app
from jdsr_cli.errors import UsageError

CONFIG = ArchConfig("imdn", 2, {"nf": 12, "num_modules": 2})


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("models")
    folders = []
    for seed, name in ((0, "clean"), (1, "photo")):
        torch.manual_seed(seed)
        folders.append(save_checkpoint(root / name, REGISTRY.build(CONFIG).eval(), CONFIG))
    return folders[0], folders[1]


def test_the_ends_are_the_two_models_exactly_and_the_middle_is_the_mean(models: tuple[Path, Path]) -> None:
    clean, photo = (resolve_model(str(p), scale=None) for p in models)
    for strength, expected in ((0.0, clean), (1.0, photo)):
        mixed = interpolate(clean, photo, strength).model.state_dict()
        assert all(torch.equal(v, expected.model.state_dict()[k]) for k, v in mixed.items())
    half = interpolate(clean, photo, 0.5).model.state_dict()
    key = next(iter(half))
    torch.testing.assert_close(half[key], (clean.model.state_dict()[key] + photo.model.state_dict()[key]) / 2)
    assert "denoise 0.5 from clean" in interpolate(clean, photo, 0.5).name
    other = resolve_model("imdn-x4", scale=None)
    with pytest.raises(UsageError, match="not the same architecture and scale"):
        interpolate(other, photo, 0.5)
    with pytest.raises(UsageError, match="between 0"):
        interpolate(clean, photo, 1.5)


def test_upscale_denoise_from_the_cli(models: tuple[Path, Path], tmp_path: Path) -> None:
    clean, photo = models
    image = tmp_path / "in.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (10, 12, 3), dtype=np.uint8)).save(image)
    runner = CliRunner()

    def run(*extra: str, model: Path = photo) -> np.ndarray:
        out = tmp_path / f"out{len(list(tmp_path.iterdir()))}"
        result = runner.invoke(app, ["upscale", str(image), "--model", str(model), "-o", str(out), *extra])
        assert result.exit_code == 0, result.output
        return np.asarray(Image.open(out / "in_x2.png"))

    assert np.array_equal(run("--denoise", "0", "--denoise-from", str(clean)), run(model=clean))
    assert np.array_equal(run("--denoise", "1", "--denoise-from", str(clean)), run())
    refused = runner.invoke(app, ["upscale", str(image), "--model", str(photo), "--denoise", "0.5", "-o",
                                  str(tmp_path / "x")])
    assert refused.exit_code == 2 and "has no clean counterpart" in refused.output
    out_of_range = runner.invoke(app, ["upscale", str(image), "--model", str(photo), "--denoise", "2", "-o",
                                       str(tmp_path / "y")])
    assert out_of_range.exit_code == 2 and "--denoise 2: a strength between 0" in out_of_range.output  # first


def test_a_manifest_entry_names_its_clean_model(tmp_path: Path) -> None:
    from jdsr_cli.checkpoints.manifest import MANIFEST_FORMAT_VERSION, parse_manifest

    entry = {"name": "photo-x2", "arch": "imdn", "scale": 2, "source": "bundled", "path": "p", "clean": "imdn-x2"}
    raw = {"format_version": MANIFEST_FORMAT_VERSION, "models": [entry]}
    entry = parse_manifest(raw, root=tmp_path).entries[0]
    assert entry.clean == "imdn-x2" and entry.to_dict()["clean"] == "imdn-x2"
    json.dumps(entry.to_dict())


def test_eval_denoise_scores_the_interpolated_model(models: tuple[Path, Path], tmp_path: Path, data_dir: Path) -> None:
    """`jdsr eval --denoise 0` scores the clean end exactly; bicubic has nothing to interpolate."""
    clean, photo = models
    runner = CliRunner()

    def scores(model: Path, *extra: str) -> list[float]:
        report = tmp_path / f"r{len(list(tmp_path.iterdir()))}.json"
        result = runner.invoke(app, ["eval", str(model), "--data", str(data_dir), "--sets", "Set5", "--json",
                                     str(report), *extra])
        assert result.exit_code == 0, result.output
        payload = json.loads(report.read_text())
        return [image["psnr"] for image in payload["sets"][0]["images"]] + [payload["denoise"]]

    assert scores(photo, "--denoise", "0", "--denoise-from", str(clean))[:-1] == scores(clean)[:-1]
    assert scores(photo, "--denoise", "0.5", "--denoise-from", str(clean))[-1] == 0.5
    refused = runner.invoke(app, ["eval", "bicubic", "-s", "2", "--data", str(data_dir), "--denoise", "0.5"])
    assert refused.exit_code == 2 and "not to bicubic" in refused.output


def test_an_interpolated_model_gets_its_own_onnx_cache_entry(models: tuple[Path, Path], tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """`--backend onnxruntime --denoise 0` ran the photo model's cached export (its file digest was kept)."""
    import jdsr_cli.engine.onnx_export as export

    monkeypatch.setenv("JDSR_CACHE_DIR", str(tmp_path / "cache"))
    exported: list[str] = []

    def fake_export(loaded, path):  # type: ignore[no-untyped-def]
        exported.append(loaded.name)
        path.write_bytes(b"onnx")

    monkeypatch.setattr(export, "export_onnx", fake_export)
    clean, photo = (resolve_model(str(p), scale=None) for p in models)
    paths = {s: export.cached_onnx(interpolate(clean, photo, s)) for s in (0.0, 0.5, 1.0)}
    assert export.cached_onnx(photo) == paths[1.0]  # s = 1 is the photo model bit for bit: the same entry
    assert export.cached_onnx(clean) == paths[0.0]
    assert len(set(paths.values())) == 3 and len(exported) == 3
    assert interpolate(clean, photo, 0.5).meta["weights_sha256"] is None  # the file's digest no longer applies
