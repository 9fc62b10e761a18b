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
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture()
def image(tmp_path: Path) -> Path:
    path = tmp_path / "in.png"
    Image.new("RGB", (16, 16), (40, 90, 200)).save(path)
    return path


# ---------------------------------------------------------------------------------------------- M2


@pytest.fixture()
def stub_exporter(monkeypatch: pytest.MonkeyPatch) -> None:
    """The path logic of `models export` without onnxscript: the exporter and its parity check are stubbed."""
    import jdsr_cli.commands.export as export

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
