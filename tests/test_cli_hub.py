"""`jdsr upscale --model hf://...` and `jdsr models download` end to end against the local Hub server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from PIL import Image as PILImage

from tests.helpers.hubserver import HubServer

REPO, REV = "someone/sr-models", "89abcdef0123456789abcdef0123456789abcdef"


def _jdsr(args: list[str], hf_home: Path, endpoint: str, offline: bool = False) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    env.update(
        HF_HOME=str(hf_home), HF_ENDPOINT=endpoint, HF_HUB_DISABLE_PROGRESS_BARS="1", HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_IMPLICIT_TOKEN="1", NO_PROXY="127.0.0.1,localhost",
    )
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    return subprocess.run([sys.executable, "-m", "jdsr_cli", *args], env=env, capture_output=True, text=True, timeout=300)


def test_upscale_from_hub_then_offline_from_cache(tmp_path: Path, data_dir: Path, trained_checkpoint: Path) -> None:
    files = {
        (REPO, REV, f"x2/{name}"): (trained_checkpoint / name).read_bytes() for name in ("model.safetensors", "config.json")
    }
    src = data_dir / "benchmark" / "Set5" / "LR_bicubic" / "X4" / "headx4.png"
    uri = f"hf://{REPO}@{REV}/x2/model.safetensors"
    hf_home = tmp_path / "hf"
    with HubServer(files) as hub:
        first = _jdsr(["upscale", str(src), "-o", str(tmp_path / "a"), "--model", uri], hf_home, hub.endpoint)
        assert first.returncode == 0, first.stderr
        fetched = [path for method, path in hub.requests if method == "GET" and "/resolve/" in path]
        assert len(fetched) == 2, hub.requests  # weights + config, nothing else of ours
        downloaded = _jdsr(["models", "download", uri], hf_home, hub.endpoint)
        assert downloaded.returncode == 0 and "models--someone--sr-models" in downloaded.stdout
        endpoint = hub.endpoint
    offline = _jdsr(["upscale", str(src), "-o", str(tmp_path / "b"), "--model", uri], hf_home, endpoint, offline=True)
    assert offline.returncode == 0, offline.stderr
    a, b = PILImage.open(tmp_path / "a" / "headx4_x2.png"), PILImage.open(tmp_path / "b" / "headx4_x2.png")
    assert a.size == b.size == (140, 140) and a.tobytes() == b.tobytes()
    missing = _jdsr(["upscale", str(src), "-o", str(tmp_path / "c"), "--model", uri.replace("x2/", "x3/")],
                    hf_home, endpoint, offline=True)
    assert missing.returncode == 2 and "HF_HUB_OFFLINE" in missing.stderr


def test_unreachable_hub_is_one_line_in_seconds(tmp_path: Path) -> None:
    """No network and no HF_HUB_OFFLINE: one line naming both ways on, not 24 s of retries and 11 log lines."""
    import socket
    import time

    with socket.socket() as probe:  # a loopback port nobody listens on: connections are refused at once
        probe.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{probe.getsockname()[1]}"
    uri = f"hf://{REPO}@{REV}/x2"
    started = time.monotonic()
    download = _jdsr(["models", "download", uri], tmp_path / "hf", endpoint)
    assert time.monotonic() - started < 5, download.stderr  # the download path does not import torch
    image = tmp_path / "in.png"
    PILImage.new("RGB", (8, 8), (90, 120, 30)).save(image)
    upscale = _jdsr(["upscale", str(image), "-o", str(tmp_path / "out"), "--model", uri], tmp_path / "hf", endpoint)
    assert upscale.returncode == 2 and download.returncode != 0
    for run in (download, upscale):
        lines = run.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), run.stderr
        assert f"could not be reached at {endpoint}" in lines[0] and "HF_HUB_OFFLINE=1" in lines[0]
        assert f"jdsr models download {uri}" in lines[0]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
