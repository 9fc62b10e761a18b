"""`jdsr models publish`: the Hub-ready folder, and the round trip through the local Hub (tests/hubserver.py).

Dry runs run in this process and touch no network. Whatever talks to the Hub runs `python -m jdsr_cli` in a
fresh process configured only by environment variables (HF_ENDPOINT -> the local server, HF_TOKEN, HF_HOME ->
a tmp folder), as a user would: huggingface_hub reads them when it is imported, so nothing is monkeypatched.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from PIL import Image as PILImage
from typer.testing import CliRunner

from jdsr_cli.archs import REGISTRY, ArchConfig
from jdsr_cli.checkpoints.manifest import load_manifest, parse_manifest
from jdsr_cli.checkpoints.save import save_checkpoint
from jdsr_cli.cli.main import app
from tests.helpers.hubserver import HubServer
from tests.helpers.hubupload import card_metadata_errors

REPO = "tester/tiny-x2"
TOKEN = "hf_test_write_token"
PUBLISHED = ["README.md", "config.json", "model.safetensors"]
COMMAND = "jdsr train data -s 2 --arch imdn --out runs/tiny-x2"
runner = CliRunner()


def _save_tiny(folder: Path, seed: int, metrics: dict[str, Any] | None) -> Path:
    torch.manual_seed(seed)
    config = ArchConfig("imdn", 2, {"nf": 12, "num_modules": 2})
    training = {"method": "supervised", "step": 40, "train_seconds": 90, "hardware": "cpu: test", "command": COMMAND,
                "config": {"data": "data", "steps": 40, "batch_size": 4, "lr": 0.001}}
    return save_checkpoint(folder, REGISTRY.build(config).eval(), config, name="tiny-x2", training=training,
                           metrics=metrics)


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A `jdsr train --out` folder of a tiny IMDN x2: best/ (with metrics) and last/ (other weights, none)."""
    run = tmp_path_factory.mktemp("runs") / "tiny-x2"
    _save_tiny(run / "best", 0, {"val": {"psnr": 30.123456, "ssim": 0.876543, "images": 3},
                                 "Set5": {"psnr": 33.5, "ssim": 0.912345, "images": 5}})
    _save_tiny(run / "last", 1, None)
    return run


def _front_matter(readme: str) -> dict[str, Any]:
    assert readme.startswith("---\n"), readme[:200]
    meta = yaml.safe_load(readme[4:readme.index("\n---", 4)])
    assert isinstance(meta, dict)
    return meta


def _figures(meta: dict[str, Any]) -> dict[tuple[str, str], tuple[float, str]]:
    """(dataset, metric) -> (value, metric name, i.e. the convention) from model-index."""
    results = meta["model-index"][0]["results"]
    return {(r["dataset"]["type"], m["type"]): (m["value"], m["name"]) for r in results for m in r["metrics"]}


def _jdsr(args: list[str], hf_home: Path, endpoint: str, token: str | None = TOKEN) -> subprocess.CompletedProcess[str]:
    """`jdsr ARGS` in a fresh process that knows the Hub only through environment variables."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("HF_", "HUGGINGFACE_", "HUGGING_FACE_")) and k.lower() not in ("http_proxy", "https_proxy")}
    env.update(HF_HOME=str(hf_home), HF_ENDPOINT=endpoint, HF_HUB_DISABLE_PROGRESS_BARS="1",
               HF_HUB_DISABLE_TELEMETRY="1", NO_PROXY="127.0.0.1,localhost")
    if token is not None:
        env["HF_TOKEN"] = token
    return subprocess.run([sys.executable, "-m", "jdsr_cli", *args], env=env, capture_output=True, text=True,
                          timeout=300)


# ------------------------------------------------------------------------------------------ dry runs


def test_dry_run_writes_a_hub_ready_folder(run_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_TOKEN", raising=False)  # a dry run needs no token
    out = tmp_path / "card"
    result = runner.invoke(app, ["models", "publish", str(run_folder), "--repo", REPO, "--dry-run", str(out)])
    assert result.exit_code == 0, result.output
    assert "nothing uploaded" in result.output
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == PUBLISHED
    best = run_folder / "best"  # a run publishes its best checkpoint, byte for byte
    assert (out / "model.safetensors").read_bytes() == (best / "model.safetensors").read_bytes()
    assert (out / "config.json").read_bytes() == (best / "config.json").read_bytes()
    sha256 = hashlib.sha256((out / "model.safetensors").read_bytes()).hexdigest()
    assert json.loads((out / "config.json").read_text())["weights_sha256"] == sha256

    readme = (out / "README.md").read_text()
    meta = _front_matter(readme)
    assert card_metadata_errors(readme) == []  # what the local Hub (like the Hub) checks before it commits
    assert (meta["library_name"], meta["license"], meta["pipeline_tag"]) == ("jdsr", "mit", "image-to-image")
    assert {"super-resolution", "image-to-image", "imdn", "x2"} <= set(meta["tags"])
    assert _figures(meta) == {("Set5", "psnr"): (33.5, "PSNR-Y crop=2"), ("Set5", "ssim"): (0.9123, "SSIM-Y crop=2"),
                              ("val", "psnr"): (30.123, "PSNR-Y crop=2"), ("val", "ssim"): (0.8765, "SSIM-Y crop=2")}
    assert meta["jdsr"]["weights_sha256"] == sha256 and meta["jdsr"]["training"]["total_steps"] == 40
    for text in (f"jdsr upscale photo.png --model hf://{REPO}/model.safetensors", sha256, COMMAND, "| Set5 | 33.50 |"):
        assert text in readme

    rerun = runner.invoke(app, ["models", "publish", str(run_folder), "--repo", REPO, "--dry-run", str(out)])
    assert rerun.exit_code == 0, rerun.output  # the same dry run again overwrites its own files


def test_dry_run_of_a_lone_weights_file_without_metrics(run_folder: Path, tmp_path: Path) -> None:
    """No config.json next to the weights: one is written (matching sha256); no metrics: the card says so."""
    lone = tmp_path / "lone" / "tiny.safetensors"
    lone.parent.mkdir()
    shutil.copy(run_folder / "last" / "model.safetensors", lone)
    out = tmp_path / "card"
    result = runner.invoke(app, ["models", "publish", str(lone), "--repo", REPO, "--dry-run", str(out)])
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    assert config["weights_sha256"] == hashlib.sha256((out / "model.safetensors").read_bytes()).hexdigest()
    assert (config["arch"], config["scale"], config["kwargs"]) == ("imdn", 2, {"nf": 12, "num_modules": 2})
    readme = (out / "README.md").read_text()
    assert "model-index" not in _front_matter(readme) and "No measured metrics" in readme
    assert card_metadata_errors(readme) == []


def test_dry_run_of_a_bundled_model_keeps_its_manifest_facts(tmp_path: Path) -> None:
    """How a maintainer moves a bundled model to the Hub: same bytes, the manifest's benchmark figures on the card."""
    manifest = load_manifest()
    entry = manifest.require("imdn-x2")
    out = tmp_path / "imdn-x2"
    result = runner.invoke(app, ["models", "publish", "imdn-x2", "--repo", "jdsr/imdn-x2", "--dry-run", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "model.safetensors").read_bytes() == (manifest.bundled_folder(entry) / "model.safetensors").read_bytes()
    assert hashlib.sha256((out / "model.safetensors").read_bytes()).hexdigest() == entry.sha256
    figures = _figures(_front_matter((out / "README.md").read_text()))
    convention = entry.metrics["convention"]  # "PSNR-Y crop=2, MATLAB-bicubic LR"
    for dataset in ("Set5", "Set14", "B100"):
        assert figures[(dataset, "psnr")] == (round(entry.metrics[dataset]["psnr"], 3), convention)


@pytest.mark.parametrize(("args", "message"), [
    (["--repo", "no-owner"], "--repo 'no-owner': expected owner/name"),
    (["--repo", "a/b/c"], "--repo 'a/b/c': expected owner/name"),
    (["--repo", REPO, "--dry-run", "{busy}"], "holds other files (notes.txt)"),
])
def test_bad_options_are_one_line(run_folder: Path, tmp_path: Path, args: list[str], message: str) -> None:
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    result = runner.invoke(app, ["models", "publish", str(run_folder), *(a.format(busy=busy) for a in args)])
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert lines[0].startswith("error: ") and message in lines[0], result.output
    assert (busy / "notes.txt").read_text() == "mine" and len(list(busy.iterdir())) == 1


@pytest.mark.parametrize("name", ["README.md", "config.json", "model.safetensors"])
def test_a_dry_run_never_writes_over_a_file_it_did_not_write(run_folder: Path, tmp_path: Path, name: str) -> None:
    """A folder holding only the user's README.md passed the 'no other files' check, and the card replaced it."""
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / name).write_text("the user's own file")
    result = runner.invoke(app, ["models", "publish", str(run_folder), "--repo", REPO, "--dry-run", str(folder)])
    assert result.exit_code == 2 and f"holds a {name} that no earlier `jdsr models publish` wrote" in result.output
    assert (folder / name).read_text() == "the user's own file" and len(list(folder.iterdir())) == 1


def test_a_dry_run_into_another_checkpoint_is_refused(run_folder: Path, tmp_path: Path) -> None:
    """M3: any folder holding a jdsr config.json counted as an earlier dry run: `--dry-run runs/b/best` replaced it."""
    other = tmp_path / "b" / "best"
    _save_tiny(other, 7, None)
    before = {p.name: p.read_bytes() for p in other.iterdir()}
    result = runner.invoke(app, ["models", "publish", str(run_folder), "--repo", REPO, "--dry-run", str(other)])
    assert result.exit_code == 2 and "that no earlier `jdsr models publish` wrote" in result.output, result.output
    assert {p.name: p.read_bytes() for p in other.iterdir()} == before


@pytest.mark.parametrize("name", PUBLISHED)
def test_a_dry_run_never_writes_through_a_link(run_folder: Path, tmp_path: Path, name: str) -> None:
    """M3: a model.safetensors that is a symlink (as in an HF cache snapshot) had the file outside DIR rewritten,
    even when the folder was an earlier dry run's."""
    folder = tmp_path / "card"
    assert runner.invoke(app, ["models", "publish", str(run_folder), "--repo", REPO, "--dry-run", str(folder)]
                         ).exit_code == 0
    victim = tmp_path / "victim.bin"
    kept = (folder / name).read_bytes()
    victim.write_bytes(kept)  # even the very bytes the dry run wrote
    (folder / name).unlink()
    (folder / name).symlink_to(victim)
    result = runner.invoke(app, ["models", "publish", str(run_folder / "last"), "--repo", REPO, "--dry-run",
                                 str(folder)])
    assert result.exit_code == 2 and f"holds a {name} that no earlier" in result.output, result.output
    assert (folder / name).is_symlink() and victim.read_bytes() == kept


def test_a_dry_run_replaces_its_own_files_atomically(run_folder: Path, tmp_path: Path) -> None:
    """A rerun replaces the files an earlier dry run wrote (and only those) by new ones, never in place: a hard link
    to an earlier file keeps the earlier bytes."""
    folder = tmp_path / "card"
    assert runner.invoke(app, ["models", "publish", str(run_folder), "--repo", REPO, "--dry-run", str(folder)]
                         ).exit_code == 0
    earlier = (folder / "model.safetensors").read_bytes()
    os.link(folder / "model.safetensors", tmp_path / "kept")
    result = runner.invoke(app, ["models", "publish", str(run_folder / "last"), "--repo", REPO, "--dry-run",
                                 str(folder)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "kept").read_bytes() == earlier
    assert (folder / "model.safetensors").read_bytes() == (run_folder / "last" / "model.safetensors").read_bytes()
    assert not [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_local_absolute_paths_stay_out_of_the_card_and_are_warned_about(tmp_path: Path) -> None:
    """The audit: publishing copied absolute local paths (user names, folder layout) into the public model card;
    the card now shows their last component only, and config.json's (copied byte for byte) are listed as a warning."""
    torch.manual_seed(0)
    config = ArchConfig("imdn", 2, {"nf": 12, "num_modules": 2})
    command = "jdsr train /home/alice/secret-project/data -s 2 --out /home/alice/runs/x2 --init ~/models/base"
    training = {"method": "supervised", "step": 40, "train_seconds": 90, "hardware": "cpu: test", "command": command,
                "config": {"data": "/home/alice/secret-project/data", "steps": 40, "init": "C:\\Users\\alice\\base",
                           "out": "/home/alice/runs/x2"}}
    run = save_checkpoint(tmp_path / "run" / "best", REGISTRY.build(config).eval(), config, name="x2",
                          training=training)
    out = tmp_path / "card"
    result = runner.invoke(app, ["models", "publish", str(run), "--repo", REPO, "--dry-run", str(out)],
                           env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    readme = (out / "README.md").read_text()
    for private in ("alice", "secret-project", "/home/", "Users"):
        assert private not in readme, private
    assert "data" in readme and "base" in readme  # the last component still says what it was
    warning = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "config.json" in warning[0] and "training.config.data" in warning[0], result.output
    assert (out / "config.json").read_bytes() == (run / "config.json").read_bytes()  # the weights' recipe, as is


# ------------------------------------------------------------------------------- through the local Hub


@pytest.mark.slow
def test_publish_then_upscale_from_the_hub(run_folder: Path, tmp_path: Path) -> None:
    image = tmp_path / "photo.png"
    PILImage.fromarray(np.random.default_rng(0).integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(image)
    hf_home = tmp_path / "hf"
    with HubServer(tokens={TOKEN}) as hub:
        published = _jdsr(["models", "publish", str(run_folder), "--repo", REPO, "--private"], hf_home, hub.endpoint)
        assert published.returncode == 0, published.stderr
        found = re.search(rf"hf://{REPO}@([0-9a-f]{{40}})/model\.safetensors", published.stdout)
        assert found, published.stdout
        commit = found[1]
        assert hub.branches[(REPO, "main")] == commit and hub.repos[REPO] == {"private": True}
        assert sorted(p for (r, c, p) in hub.files if (r, c) == (REPO, commit)) == [".gitattributes", *PUBLISHED]
        weights = (run_folder / "best" / "model.safetensors").read_bytes()
        assert hub.files[(REPO, commit, "model.safetensors")] == weights  # uploaded as is
        entry = json.loads(published.stdout.split('"models"):\n', 1)[1])
        manifest = parse_manifest({"format_version": 1, "models": [entry]}, root=tmp_path)  # a valid Hub entry
        assert manifest.entries[0].hub_ref().uri == found[0]
        assert entry["sha256"] == hashlib.sha256(weights).hexdigest() and entry["metrics"]["Set5"]["psnr"] == 33.5

        from_hub = _jdsr(["upscale", str(image), "-o", str(tmp_path / "hub"), "--model", found[0], "--device", "cpu"],
                         hf_home, hub.endpoint)
        assert from_hub.returncode == 0, from_hub.stderr
        assert [m for m, p in hub.requests if m == "GET" and f"/resolve/{commit}/" in p] == ["GET", "GET"]
    local = _jdsr(["upscale", str(image), "-o", str(tmp_path / "local"), "--model", str(run_folder / "best"),
                   "--device", "cpu"], hf_home, "http://127.0.0.1:9")
    assert local.returncode == 0, local.stderr
    a, b = (PILImage.open(tmp_path / which / "photo_x2.png") for which in ("hub", "local"))
    assert a.size == b.size == (48, 40) and a.tobytes() == b.tobytes()


@pytest.mark.slow
@pytest.mark.parametrize(("case", "expected"), [
    ("commit refused", "the Hub answered 403: commit refused"),
    ("token refused", "the Hub answered 401: Invalid credentials in Authorization header; check that the token"),
    ("hub down", "ConnectError"),
])
def test_upload_failure_is_one_line(run_folder: Path, tmp_path: Path, case: str, expected: str) -> None:
    with HubServer(tokens={TOKEN}) as hub:
        if case == "commit refused":
            hub.fail["commit"] = 403
        endpoint = hub.endpoint
        if case == "hub down":
            hub.stop()  # the port closes: connections are refused at once
        started = time.monotonic()
        run = _jdsr(["models", "publish", str(run_folder), "--repo", REPO], tmp_path / "hf", endpoint,
                    token="hf_read_only" if case == "token refused" else TOKEN)
        seconds = time.monotonic() - started
        assert not hub.commits
    assert run.returncode == 1, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: --repo {REPO}: upload to {endpoint} failed: "), run.stderr
    assert expected in lines[0] and "hf://" not in run.stdout
    assert seconds < 60  # no 25 s of retries on top of the process start


def test_no_token_is_refused_before_anything(run_folder: Path, tmp_path: Path) -> None:
    with HubServer() as hub:
        run = _jdsr(["models", "publish", str(run_folder), "--repo", REPO], tmp_path / "hf", hub.endpoint, token=None)
        assert hub.requests == []
    assert run.returncode == 2 and run.stdout == "", run.stdout
    assert run.stderr.strip() == (f"error: --repo {REPO}: no Hugging Face token: set HF_TOKEN or run `hf auth login` "
                                  "(a token with write access)")


def test_local_hub_refuses_metadata_the_hub_would() -> None:
    """The round trip's card check is real: broken front matter and a model-index without types are refused."""
    assert card_metadata_errors("---\nlicense: [mit\n---\n") != []
    bad_index = "---\nmodel-index:\n- name: x\n  results:\n  - dataset: {name: Set5}\n    metrics: [{value: 1}]\n---\n"
    errors = card_metadata_errors(bad_index)
    assert any("task.type" in e for e in errors) and any("dataset.type" in e for e in errors)
    assert card_metadata_errors("# no metadata\n") == []
