"""`jdsr upscale --model hf://...` and `jdsr models download` end to end against the local Hub server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from PIL import Image as PILImage

from tests.hubserver import HubServer

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
