"""``jdsr models export --format onnx`` and ``jdsr upscale --backend onnxruntime``: dynamic sizes, the parity
check and its refusal, the config in the metadata, the folded SPAN, the cache, and the one-line refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from jdsr_cli.archs import REGISTRY, ArchConfig
from jdsr_cli.checkpoints.save import save_checkpoint
from jdsr_cli.cli.main import app

pytest.importorskip("onnxruntime")  # the jdsr-cli[onnx] extra; the test extra installs it


_EXPORTS: dict[tuple[object, ...], bytes] = {}


@pytest.fixture(autouse=True)
def export_each_model_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The dynamo exporter takes 5-10 s a model on this CPU: the tests share one real export per weights."""
    import jdsr_cli.engine.onnx_export as export

    real = export.onnx_bytes

    def memo(loaded, *, opset: int = export.DEFAULT_OPSET, fp16: bool = False) -> bytes:  # type: ignore[no-untyped-def]
        key = (loaded.meta.get("weights_sha256"), loaded.config.arch, opset, fp16)
        if key[0] is None or key not in _EXPORTS:
            _EXPORTS[key] = real(loaded, opset=opset, fp16=fp16)
        return _EXPORTS[key]

    monkeypatch.setattr(export, "onnx_bytes", memo)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    config = ArchConfig("imdn", 2, {"nf": 12, "num_modules": 2})
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny-imdn", REGISTRY.build(config).eval(), config)


def test_export_writes_a_checked_dynamic_onnx_with_the_config(tiny: Path, tmp_path: Path) -> None:
    import onnxruntime as ort

    from jdsr_cli.checkpoints.resolve import resolve_model
    from jdsr_cli.engine.onnx_runtime import metadata_of

    out = tmp_path / "tiny.onnx"
    result = CliRunner().invoke(app, ["models", "export", str(tiny), "--format", "onnx", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "ONNX opset 18, fp32" in result.output and "max |Δ|" in result.output
    config = json.loads(metadata_of(out)["jdsr.config"])
    assert (config["arch"], config["scale"], config["kwargs"]) == ("imdn", 2, {"nf": 12, "num_modules": 2})
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    model = resolve_model(str(tiny), scale=None).model
    for shape in ((1, 3, 17, 23), (2, 3, 9, 40)):  # other sizes and batches than the traced one
        x = torch.rand(*shape)
        (y,) = session.run(None, {"lr": x.numpy()})
        with torch.no_grad():
            np.testing.assert_allclose(y, model(x).numpy(), atol=1e-4)


def test_a_disagreeing_export_is_refused_and_nothing_is_written(tiny: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import jdsr_cli.engine.onnx_export as export

    monkeypatch.setattr(export, "parity", lambda loaded, runner: (0.2, 14.0))
    out = tmp_path / "bad.onnx"
    result = CliRunner().invoke(app, ["models", "export", str(tiny), "-o", str(out)])
    assert result.exit_code == 1 and "not written, the ONNX model disagrees with PyTorch" in result.output
    assert not out.exists() and not list(tmp_path.iterdir())


def test_export_destinations_a_folder_a_new_folder_and_a_file_in_the_way(tiny: Path, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import jdsr_cli.engine.onnx_export as export

    runner = CliRunner()
    (tmp_path / "exports").mkdir()
    assert runner.invoke(app, ["models", "export", str(tiny), "-o", str(tmp_path / "exports")]).exit_code == 0
    assert [p.name for p in (tmp_path / "exports").iterdir()] == ["tiny-imdn.onnx"]  # the default name inside
    new = tmp_path / "new" / "sub" / "m.onnx"
    assert runner.invoke(app, ["models", "export", str(tiny), "-o", str(new)]).exit_code == 0 and new.is_file()

    (tmp_path / "afile").write_text("x")
    monkeypatch.setattr(export, "onnx_bytes", lambda *a, **k: pytest.fail("exported before checking -o"))
    result = runner.invoke(app, ["models", "export", str(tiny), "-o", str(tmp_path / "afile" / "m.onnx")])
    assert result.exit_code == 2 and "is a file, not a folder" in result.output, result.output
    photo = tmp_path / "photo.png"
    photo.write_bytes(b"a photo")
    result = runner.invoke(app, ["models", "export", str(tiny), "-o", str(photo)])  # a slip of -o
    assert result.exit_code == 2 and "an ONNX model's file name ends in .onnx" in result.output, result.output
    assert photo.read_bytes() == b"a photo"


def test_a_named_system_error_is_one_line_not_a_bug_report(tiny: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    def full_disk(path: object, data: bytes) -> None:
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr("jdsr_cli.engine.onnx_export.atomic_write_bytes", full_disk)
    out = tmp_path / "m.onnx"
    result = CliRunner().invoke(app, ["models", "export", str(tiny), "-o", str(out)])
    assert result.exit_code == 1 and result.output.strip() == f"error: {out}: No space left on device", result.output


def test_span_exports_in_its_folded_form(tmp_path: Path) -> None:
    from jdsr_cli.checkpoints.resolve import resolve_model
    from jdsr_cli.engine.onnx_export import export_onnx

    config = ArchConfig("span", 2, {"feature_channels": 8})
    folder = save_checkpoint(tmp_path / "span", REGISTRY.build(config), config)
    report = export_onnx(resolve_model(str(folder), scale=None), tmp_path / "span.onnx")
    import onnx

    names = {init.name for init in onnx.load(str(report.path)).graph.initializer}
    assert report.max_abs_diff < 1e-3 and not any(".sk." in n or ".conv.0." in n for n in names)


def test_upscale_with_onnxruntime_matches_torch_and_caches_the_export(tiny: Path, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JDSR_CACHE_DIR", str(tmp_path / "cache"))
    photo = tmp_path / "in" / "photo.png"
    photo.parent.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (21, 30, 3), dtype=np.uint8)).save(photo)
    runner = CliRunner()
    outputs = {}
    for name, backend, extra in (("torch", "torch", []), ("ort", "onnxruntime", []),
                                 ("ort-tiled", "onnxruntime", ["--tile", "32", "--tta"])):
        out = tmp_path / name
        result = runner.invoke(app, ["upscale", str(photo), "--model", str(tiny), "-o", str(out), "--backend", backend,
                                     *extra])
        assert result.exit_code == 0, result.output
        outputs[out.name] = np.asarray(Image.open(out / "photo_x2.png")).astype(int)
    assert np.abs(outputs["ort"] - outputs["torch"]).max() <= 1
    assert outputs["ort-tiled"].shape == (42, 60, 3)
    cached = list((tmp_path / "cache" / "onnx").glob("*.onnx"))
    assert len(cached) == 1 and cached[0].name.startswith("imdn-x2-")


def test_onnxruntime_refusals_are_one_line(tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    runner = CliRunner()
    photo = tmp_path / "p.png"
    Image.new("RGB", (8, 8)).save(photo)
    base = ["upscale", str(photo), "--model", str(tiny), "-o", str(tmp_path / "o"), "--backend"]
    for extra, message in ((["onnxruntime", "--device", "cuda"], "--backend onnxruntime runs on the CPU"),
                           (["onnxruntime", "--precision", "bf16"], "--backend onnxruntime runs fp32"),
                           (["tensorrt"], "--backend 'tensorrt': choose torch or onnxruntime")):
        result = runner.invoke(app, [*base, *extra])
        assert result.exit_code == 2 and message in result.output, result.output
    assert runner.invoke(app, ["models", "export", str(tiny), "--opset", "12"]).exit_code == 2
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # the extra not installed
    monkeypatch.setenv("JDSR_CACHE_DIR", str(tmp_path / "empty"))
    result = runner.invoke(app, [*base, "onnxruntime"])
    assert result.exit_code == 2 and "pip install 'jdsr-cli[onnx]'" in result.output
