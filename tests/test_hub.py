"""hf:// references and Hub downloads against a local stand-in server (tests/hubserver.py).

huggingface_hub reads ``HF_ENDPOINT``, ``HF_HOME`` and ``HF_HUB_OFFLINE`` when it is imported, and jdsr
deliberately passes no ``endpoint=``/``cache_dir=`` of its own. So each download runs in a fresh Python
process started with exactly the environment a user would set (``HF_ENDPOINT`` -> the local server,
``HF_HOME`` -> a tmp folder): the real configuration path is what is tested, nothing is monkeypatched.
The download side of jdsr does not import torch, so each process takes well under a second; loading the
downloaded files happens in the test process.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from jdsr_cli.checkpoints.hubref import HubRef, parse_hf_uri
from jdsr_cli.checkpoints.load import load_checkpoint
from jdsr_cli.checkpoints.save import save_checkpoint
from jdsr_cli.errors import UsageError
from tests.helpers.hubserver import HubServer
from tests.helpers.tinynet import TINY_REGISTRY, make_tiny, tiny_config

REPO_ROOT = Path(__file__).resolve().parents[1]
REPO = "owner/repo"
REV = "0123456789abcdef0123456789abcdef01234567"


# ------------------------------------------------------------------------------------ hf:// parsing


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        (f"hf://owner/repo@{REV}/x4/model.safetensors", HubRef("owner/repo", REV, "x4/model.safetensors")),
        ("hf://owner/repo/x4", HubRef("owner/repo", None, "x4")),
        ("hf://owner/repo@v1.0", HubRef("owner/repo", "v1.0", "")),
        ("hf://owner/repo@refs%2Fpr%2F3/a/config.json", HubRef("owner/repo", "refs/pr/3", "a/config.json")),
        ("hf://o-1/r.2_x/", HubRef("o-1/r.2_x", None, "")),
    ],
)
def test_parse_hf_uri(uri: str, expected: HubRef) -> None:
    assert parse_hf_uri(uri) == expected


@pytest.mark.parametrize(
    "uri", ["hf://", "hf://owner", "hf://owner/repo@/x", "hf://owner/re po/x", "hf://o/r/../x", "http://o/r"]
)
def test_parse_hf_uri_rejects(uri: str) -> None:
    with pytest.raises(UsageError):
        parse_hf_uri(uri)


def test_hub_ref_files() -> None:
    assert HubRef(REPO, None, "x4/model.safetensors").files() == ("x4/model.safetensors", "x4/config.json", False)
    assert HubRef(REPO, None, "x4/config.json").files() == ("x4/model.safetensors", "x4/config.json", True)
    assert HubRef(REPO, None, "x4").files() == ("x4/model.safetensors", "x4/config.json", False)
    assert HubRef(REPO, None, "").files() == ("model.safetensors", "config.json", False)
    assert HubRef(REPO, None, "old/net_g.pth").files() == ("old/net_g.pth", None, False)
    assert HubRef(REPO, REV, "x4").uri == f"hf://{REPO}@{REV}/x4"


# ------------------------------------------------------------------------------- server + processes


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A tiny x4 checkpoint 'published' in owner/repo at REV (x4/ with config, noconf/ without)."""
    from safetensors.torch import save as safetensors_save

    model = make_tiny(scale=4, seed=7)
    folder = save_checkpoint(tmp_path_factory.mktemp("pub") / "x4", model, tiny_config(scale=4), name="tiny-x4")
    weights = (folder / "model.safetensors").read_bytes()
    bare = safetensors_save({k: v.contiguous() for k, v in model.state_dict().items()})  # no metadata
    files = {
        (REPO, REV, "x4/model.safetensors"): weights,
        (REPO, REV, "x4/config.json"): (folder / "config.json").read_bytes(),
        (REPO, REV, "noconf/model.safetensors"): bare,
    }
    return {"model": model, "files": files, "sha256": hashlib.sha256(weights).hexdigest()}


@pytest.fixture()
def server(published: dict[str, Any]):
    with HubServer(published["files"], branches={(REPO, "main"): REV}) as hub:
        yield hub


_DRIVER = r"""
import json, sys, time
from jdsr_cli.errors import JdsrError
from jdsr_cli.checkpoints.hub import download_model
from jdsr_cli.checkpoints.manifest import load_manifest

calls = json.loads(sys.argv[1])
if any(call["fn"] == "resolve" for call in calls):  # imported before the clock starts (torch takes seconds)
    from jdsr_cli.checkpoints.resolve import resolve_model
    from tests.helpers.tinynet import TINY_REGISTRY
results = []
for call in calls:
    manifest = load_manifest(call["manifest"]) if call.get("manifest") else None
    started = time.monotonic()
    try:
        if call["fn"] == "download":
            path = download_model(call["ref"], manifest=manifest)
            results.append({"path": str(path), "config": (path.parent / "config.json").is_file()})
        else:  # resolve: the full --model path, with the test architecture registry
            loaded = resolve_model(call["ref"], scale=call.get("scale"), manifest=manifest, registry=TINY_REGISTRY)
            results.append({"name": loaded.name, "scale": loaded.model_scale, "source": loaded.source})
    except JdsrError as error:
        results.append({"error": type(error).__name__, "message": str(error)})
    results[-1]["seconds"] = time.monotonic() - started
results.append({"torch_imported": "torch" in sys.modules})
print(json.dumps(results))
"""


def run_jdsr(
    calls: list[dict[str, Any]], *, hf_home: Path, endpoint: str, offline: bool = False,
    stderr: list[str] | None = None, timings: list[float] | None = None,
) -> list[dict]:
    """Run download/resolve calls in a fresh process configured only through environment variables.

    ``timings`` collects each call's seconds (the call alone, not the process start), ``stderr`` the
    process's stderr."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HF_", "HUGGINGFACE_")) and k.lower() not in ("http_proxy", "https_proxy", "all_proxy")
    }
    env.update(
        HF_HOME=str(hf_home),
        HF_ENDPOINT=endpoint,
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_IMPLICIT_TOKEN="1",
        HF_HUB_ETAG_TIMEOUT="5",
        HF_HUB_DOWNLOAD_TIMEOUT="10",
        NO_PROXY="127.0.0.1,localhost",
        PYTHONPATH=str(REPO_ROOT),
    )
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    proc = subprocess.run(
        [sys.executable, "-c", _DRIVER, json.dumps(calls)],
        cwd=hf_home.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    if stderr is not None:
        stderr.append(proc.stderr)
    *results, tail = json.loads(proc.stdout.strip().splitlines()[-1])
    seconds = [result.pop("seconds") for result in results]
    if timings is not None:
        timings.extend(seconds)
    if all(c["fn"] == "download" for c in calls):
        assert not tail["torch_imported"], "the download path should not import torch"
    return results


def _manifest(tmp_path: Path, **change: Any) -> str:
    entry = {
        "name": "tiny-hub",
        "arch": "tiny",
        "scale": 4,
        "source": "hub",
        "repo": REPO,
        "revision": REV,
        "filename": "x4/model.safetensors",
        "config_filename": "x4/config.json",
        **change,
    }
    path = tmp_path / "weights" / "manifest.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"format_version": 1, "models": [entry]}))
    return str(path)


# ------------------------------------------------------------------------------------------- tests


def test_download_then_load_then_offline_from_cache(tmp_path: Path, server: HubServer, published: dict) -> None:
    hf_home = tmp_path / "hf"
    uri = f"hf://{REPO}@{REV}/x4/model.safetensors"
    [first] = run_jdsr([{"fn": "download", "ref": uri}], hf_home=hf_home, endpoint=server.endpoint)
    path = Path(first["path"])
    snapshot = hf_home / "hub" / "models--owner--repo" / "snapshots" / REV
    assert path == snapshot / "x4" / "model.safetensors" and first["config"] is True
    requested = {p for _, p in server.requests}
    assert f"/{REPO}/resolve/{REV}/x4/model.safetensors" in requested
    assert f"/{REPO}/resolve/{REV}/x4/config.json" in requested
    assert server.count("GET") == 2

    loaded = load_checkpoint(path, registry=TINY_REGISTRY)  # sibling config.json in the snapshot
    assert "config_source" not in loaded.meta  # the published config.json itself
    assert loaded.meta["name"] == "tiny-x4" and loaded.model_scale == 4
    x = torch.rand(1, 3, 5, 4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(published["model"](x), loaded.model(x))

    server.reset()
    [again] = run_jdsr([{"fn": "download", "ref": uri}], hf_home=hf_home, endpoint=server.endpoint, offline=True)
    assert again == first and server.count() == 0


def test_branch_reference_is_served_offline_and_when_the_hub_is_down(tmp_path: Path, published: dict) -> None:
    hf_home = tmp_path / "hf"
    with HubServer(published["files"], branches={(REPO, "main"): REV}) as hub:
        [online] = run_jdsr([{"fn": "download", "ref": f"hf://{REPO}/x4"}], hf_home=hf_home, endpoint=hub.endpoint)
        assert hub.count("GET") == 2
        hub.reset()
        [offline] = run_jdsr(
            [{"fn": "download", "ref": f"hf://{REPO}/x4"}], hf_home=hf_home, endpoint=hub.endpoint, offline=True
        )
        assert offline == online and hub.count() == 0
        dead = hub.endpoint
    # the server is stopped: connection refused -> the cached copy (refs/main) is used
    [down] = run_jdsr([{"fn": "download", "ref": f"hf://{REPO}/x4"}], hf_home=hf_home, endpoint=dead)
    assert down == online


def test_not_cached_and_offline_or_unreachable(tmp_path: Path, server: HubServer) -> None:
    hf_home = tmp_path / "hf"
    manifest = _manifest(tmp_path)
    calls = [
        {"fn": "download", "ref": "tiny-hub", "manifest": manifest},
        {"fn": "download", "ref": f"hf://{REPO}@{REV}/x4"},
    ]
    by_name, by_uri = run_jdsr(calls, hf_home=hf_home, endpoint=server.endpoint, offline=True)
    assert server.count() == 0
    assert by_name["error"] == "ModelLoadError"
    message = by_name["message"]
    assert message.startswith(f"tiny-hub is not in the local cache ({hf_home / 'hub'}) and the Hub is offline")
    assert "(HF_HUB_OFFLINE=1)" in message and "run `jdsr models download tiny-hub`" in message
    assert "on a machine with network access, or copy the cache (HF_HOME)" in message
    assert f"run `jdsr models download hf://{REPO}@{REV}/x4`" in by_uri["message"]

    endpoint = server.endpoint
    server.stop()  # now unreachable (connection refused) and not offline
    [down] = run_jdsr(calls[:1], hf_home=hf_home, endpoint=endpoint)
    assert down["error"] == "ModelLoadError"
    assert f"and the Hub could not be reached at {endpoint} (ConnectError: " in down["message"]
    assert "run `jdsr models download tiny-hub`" in down["message"] and "HF_HUB_OFFLINE=1" in down["message"]


def _closed_port() -> int:
    """A loopback port nobody listens on (connections are refused at once)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_unreachable_hub_fails_fast_in_one_line(tmp_path: Path) -> None:
    """No network and no HF_HUB_OFFLINE: one line within 5 s, not 24 s of retries and their log lines."""
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    calls = [
        {"fn": "download", "ref": f"hf://{REPO}@{REV}/x4"},
        {"fn": "download", "ref": f"hf://{REPO}/x4/model.safetensors"},  # a branch: no pinned commit
        {"fn": "resolve", "ref": "tiny-hub", "manifest": _manifest(tmp_path)},
    ]
    stderr: list[str] = []
    timings: list[float] = []
    results = run_jdsr(calls, hf_home=tmp_path / "hf", endpoint=endpoint, stderr=stderr, timings=timings)
    assert stderr == [""], stderr[0][:2000]  # nothing but our messages (returned, not printed, here)
    for result, seconds in zip(results, timings, strict=True):
        message = result["message"]
        assert result["error"] == "ModelLoadError" and "\n" not in message
        assert f"could not be reached at {endpoint}" in message and "HF_HUB_OFFLINE=1" in message
        assert "jdsr models download" in message and seconds < 5, (seconds, message)


def test_sha_mismatch_against_the_manifest(tmp_path: Path, server: HubServer, published: dict) -> None:
    hf_home = tmp_path / "hf"
    wrong = "f" * 64
    calls = [
        {"fn": "download", "ref": "tiny-hub", "manifest": _manifest(tmp_path, sha256=wrong)},
        {"fn": "download", "ref": "tiny-hub", "manifest": _manifest(tmp_path / "ok", sha256=published["sha256"])},
    ]
    bad, good = run_jdsr(calls, hf_home=hf_home, endpoint=server.endpoint)
    assert bad["error"] == "ModelLoadError"
    assert f"sha256 mismatch for {REPO}@{REV}/x4/model.safetensors" in bad["message"]
    assert f"expected {wrong}, actual {published['sha256']}" in bad["message"]
    assert bad["message"].startswith("tiny-hub: ")
    assert Path(good["path"]).is_file()  # the cache was left intact (the good entry reuses it)


def test_remote_errors_are_model_load_errors(tmp_path: Path, server: HubServer) -> None:
    other = "f" * 40
    calls = [
        {"fn": "download", "ref": f"hf://{REPO}@{REV}/missing/model.safetensors"},
        {"fn": "download", "ref": f"hf://{REPO}@{other}/x4"},
        {"fn": "download", "ref": f"hf://nobody/nothing@{REV}/x4"},
        {"fn": "download", "ref": f"hf://{REPO}@{REV}/noconf/model.safetensors"},  # no config: fine
        {"fn": "download", "ref": "not-a-model", "manifest": _manifest(tmp_path)},
    ]
    missing, revision, repo, noconf, unknown = run_jdsr(calls, hf_home=tmp_path / "hf", endpoint=server.endpoint)
    assert "missing/model.safetensors not found on http://127.0.0.1" in missing["message"]
    assert f"revision '{other}' not found in {REPO}" in revision["message"]
    assert "repository nobody/nothing not found" in repo["message"]
    assert noconf["config"] is False and "error" not in noconf
    assert "unknown model 'not-a-model'; known models: tiny-hub" in unknown["message"]
    # at a pinned commit both the file and the config's absence are cached: no request at all
    server.reset()
    [again] = run_jdsr(calls[3:4], hf_home=tmp_path / "hf", endpoint=server.endpoint)
    assert again == noconf and server.count() == 0


def test_resolve_hub_model_end_to_end(tmp_path: Path, server: HubServer, published: dict) -> None:
    hf_home = tmp_path / "hf"
    manifest = _manifest(tmp_path, sha256=published["sha256"])
    calls = [
        {"fn": "resolve", "ref": "tiny-hub", "manifest": manifest, "scale": 2},
        {"fn": "resolve", "ref": f"hf://{REPO}@{REV}/noconf/model.safetensors", "scale": 4},
    ]
    by_name, detected = run_jdsr(calls, hf_home=hf_home, endpoint=server.endpoint)
    assert by_name == {"name": "tiny-hub", "scale": 4, "source": f"hf://{REPO}@{REV}/x4/model.safetensors"}
    assert detected["scale"] == 4 and detected["source"] == f"hf://{REPO}@{REV}/noconf/model.safetensors"
