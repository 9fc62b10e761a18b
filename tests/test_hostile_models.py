"""A small hostile model file (audit M1) is refused with one line and exit 2, quickly, before any large allocation.

A config.json (or a safetensors header) can declare any width; a ``.pth`` can hold stride-0 views (one element
expanded to any shape) or deflate-compressed zip entries. Each runs in a child under a 4 GB address-space cap,
so a regression fails the test instead of taking the machine's memory.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import torch
from PIL import Image

from jdsr_cli.archs import REGISTRY
from jdsr_cli.archs.registry import ArchConfig
from jdsr_cli.checkpoints.load import load_checkpoint
from jdsr_cli.errors import ModelLoadError

CAP = 4_000_000_000
TINY = ArchConfig("fsrcnn", 2, {"d": 8, "s": 4, "m": 1})


def _capped() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (CAP, CAP))


def _jdsr(*args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``jdsr ARGS`` in a child limited to 4 GB of address space; stdout and stderr together."""
    env = {**os.environ, "COLUMNS": "400", "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "jdsr_cli", *map(str, args)], cwd=cwd, env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120, preexec_fn=_capped)


def _refused(result: subprocess.CompletedProcess[str], name: str, reason: str, seconds: float) -> None:
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert result.returncode == 2, result.stdout
    assert len(lines) == 1 and name in lines[0] and reason in lines[0], result.stdout
    assert "bug in jdsr" not in result.stdout and seconds < 30


@pytest.fixture()
def image(tmp_path: Path) -> Path:
    path = tmp_path / "in.png"
    Image.new("RGB", (16, 16)).save(path)
    return path


def _config_folder(folder: Path, kwargs: dict[str, int]) -> Path:
    from safetensors.torch import save_file

    folder.mkdir()
    save_file({"x": torch.zeros(1)}, str(folder / "model.safetensors"))
    config = {"format": "jdsr-checkpoint", "format_version": 1, "arch": "edsr", "scale": 2, "kwargs": kwargs}
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.mark.parametrize("kwargs", [{"num_feat": 10**6, "num_block": 1}, {"num_feat": -5, "num_block": 1}],
                         ids=["huge", "negative"])
def test_a_config_json_that_declares_a_huge_network_is_refused(tmp_path: Path, image: Path,
                                                               kwargs: dict[str, int]) -> None:
    folder = _config_folder(tmp_path / "cfg", kwargs)
    start = time.monotonic()
    result = _jdsr("upscale", image, "-o", tmp_path / "o.png", "--model", folder, "--device", "cpu", cwd=tmp_path)
    _refused(result, "cfg", "edsr x2", time.monotonic() - start)
    assert not (tmp_path / "o.png").exists()


def test_names_and_shapes_are_checked_before_the_network_is_built(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The audit's 578 MB case (num_feat 1024): the mismatch is found on the meta device, nothing is allocated."""
    folder = _config_folder(tmp_path / "cfg", {"num_feat": 1024, "num_block": 2})
    built_on: list[str] = []
    real_build = type(REGISTRY).build

    def build(self: object, config: ArchConfig):  # type: ignore[no-untyped-def]
        built_on.append(torch.empty(0).device.type)
        return real_build(self, config)  # type: ignore[arg-type]

    monkeypatch.setattr(type(REGISTRY), "build", build)
    with pytest.raises(ModelLoadError, match="do not fit edsr x2"):
        load_checkpoint(folder)
    assert built_on and set(built_on) == {"meta"}, built_on


def _stride0_bomb(path: Path, num_feat: int) -> None:
    """The audit's 2.5 KB .pth: EDSR's names and shapes, every tensor one element expanded (845 GiB at 60000)."""
    with torch.device("meta"):
        state = REGISTRY.build(ArchConfig("edsr", 2, {"num_feat": num_feat, "num_block": 1})).state_dict()
    one = torch.zeros(1)
    torch.save({k: one.expand(v.shape) if v.dim() else one[0] for k, v in state.items()}, path)


@pytest.mark.parametrize("command", ["inspect", "upscale"])
def test_a_pth_of_stride0_views_is_refused(tmp_path: Path, image: Path, command: str) -> None:
    bomb = tmp_path / "bomb.pth"
    _stride0_bomb(bomb, 60000)
    assert bomb.stat().st_size < 10_000
    start = time.monotonic()
    args = ("models", "inspect", bomb) if command == "inspect" else \
        ("upscale", image, "-o", tmp_path / "o.png", "--model", bomb, "--device", "cpu")
    result = _jdsr(*args, cwd=tmp_path)
    _refused(result, "bomb.pth", "more elements than the data stored for it", time.monotonic() - start)


def test_overlapping_views_are_bounded_by_the_file_size(tmp_path: Path) -> None:
    """Views that each fit their storage but together declare far more than the file holds."""
    storage = torch.zeros(4096)
    views = {f"w{i}": storage[i:].as_strided((4000,), (1,)) for i in range(64)}
    torch.save(views, tmp_path / "views.pth")
    refusal = r"views\.pth: refusing to load: its tensors declare .* more than the file holds"
    with pytest.raises(ModelLoadError, match=refusal):
        load_checkpoint(tmp_path / "views.pth")


def _deflated(source: Path, target: Path) -> None:
    with zipfile.ZipFile(source) as plain, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as packed:
        for info in plain.infolist():
            packed.writestr(info.filename, plain.read(info.filename))


def test_a_pth_with_compressed_zip_entries_is_refused(tmp_path: Path) -> None:
    """torch.save stores zip entries uncompressed; a deflated one inflates about 1000:1 inside torch.load."""
    torch.save(REGISTRY.build(TINY).state_dict(), tmp_path / "plain.pth")
    load_checkpoint(tmp_path / "plain.pth")  # the stored form loads
    _deflated(tmp_path / "plain.pth", tmp_path / "z.pth")
    with pytest.raises(ModelLoadError, match=r"z\.pth: refusing to load: .* is compressed"):
        load_checkpoint(tmp_path / "z.pth")
    torch.save({"w": torch.zeros(12_500_000)}, tmp_path / "big.pth")  # the audit's 50 MB from ~50 KB
    _deflated(tmp_path / "big.pth", tmp_path / "zbig.pth")
    assert (tmp_path / "zbig.pth").stat().st_size < 200_000
    result = _jdsr("models", "inspect", tmp_path / "zbig.pth", cwd=tmp_path)
    _refused(result, "zbig.pth", "compressed", 0)


def test_legitimate_pth_files_still_load(tmp_path: Path) -> None:
    """Tied weights (two names, one storage) and a BasicSR wrapper holding other tensors still load."""
    net = REGISTRY.build(TINY)
    state = net.state_dict()
    torch.save({"params_ema": state, "params": state}, tmp_path / "wrapped.pth")
    loaded = load_checkpoint(tmp_path / "wrapped.pth", scale_hint=2)
    assert all(torch.equal(v, loaded.model.state_dict()[k]) for k, v in state.items())
