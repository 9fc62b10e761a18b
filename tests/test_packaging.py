"""Packaging: every package is listed, and a wheel carries the bundled weights and manifest."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]


def test_every_source_package_is_listed_in_pyproject() -> None:
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {
        ".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "jdsr_cli").rglob("__init__.py")
    } | {"jdsr_weights"}
    assert listed == on_disk


@pytest.mark.slow
def test_wheel_contains_weights_and_manifest(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path)],
        check=True, capture_output=True,
    )
    wheel = next(tmp_path.glob("jdsr_cli-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "jdsr_weights/manifest.json" in names
    manifest = json.loads((ROOT / "weights" / "manifest.json").read_text())
    for entry in manifest["models"]:
        if entry["source"] == "bundled":
            assert f"jdsr_weights/{entry['path']}/model.safetensors" in names
            assert f"jdsr_weights/{entry['path']}/config.json" in names
    assert "jdsr_cli/cli/main.py" in names
