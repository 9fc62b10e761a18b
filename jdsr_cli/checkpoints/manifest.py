"""The model list: ``weights/manifest.json`` (installed as the package ``jdsr_weights``).

::

    {"format_version": 1, "models": [
      {"name": "imdn-x4", "arch": "imdn", "scale": 4, "description": "...", "source": "bundled",
       "path": "imdn-x4", "sha256": "<64 hex>", "metrics": {...}, "default_for_scale": true},
      {"name": "edsr-x4", "arch": "edsr", "scale": 4, "description": "...", "source": "hub",
       "repo": "owner/name", "revision": "<40-hex commit>", "filename": "x4/model.safetensors",
       "config_filename": "x4/config.json", "sha256": "<64 hex>"}]}

``role`` is ``upscale`` (the default) or ``downscale`` (learned downscalers: ``jdsr downscale --method
superior``); ``default_for_scale`` marks the default of its role at its scale; ``pair`` names the model
that undoes this one (a superior-LR encoder's decoder and back). ``bf16_delta_db`` is the measured PSNR-Y change
of bf16 against fp32 on Set5+Set14 (``experiments/bf16_quality.py``); ``--precision auto`` does not pick bf16 for a model
that loses more than ``BF16_AUTO_MAX_LOSS_DB`` (issue 16), though ``--precision bf16`` still runs it.

Bundled ``path`` is a checkpoint folder relative to the manifest's folder. Hub entries pin a commit,
so a cached copy is used without any request. ``sha256`` is that of the weights file. This module does
not import torch.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jdsr_cli.checkpoints.hubref import HubRef
from jdsr_cli.errors import ModelLoadError

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT_VERSION = 1
SOURCES = ("bundled", "hub")
ROLES = ("upscale", "downscale")

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_REPO_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")

_COMMON_REQUIRED = ("name", "arch", "scale", "source")
_COMMON_OPTIONAL = ("description", "sha256", "metrics", "default_for_scale", "role", "pair", "clean", "faithful",
                    "bf16_delta_db")
#: the most PSNR-Y (dB) bf16 may cost a model for ``--precision auto`` to pick it
BF16_AUTO_MAX_LOSS_DB = 0.02
_SOURCE_FIELDS = {
    "bundled": (("path",), ()),
    "hub": (("repo", "revision", "filename"), ("config_filename",)),
}


class ManifestError(ModelLoadError):
    """manifest.json is missing, unreadable or invalid (the message names the entry and field)."""


@dataclass(frozen=True)
class ManifestEntry:
    name: str
    arch: str
    scale: int
    source: str  # "bundled" | "hub"
    description: str = ""
    sha256: str | None = None
    metrics: Mapping[str, Any] = field(default_factory=dict)
    default_for_scale: bool = False
    role: str = "upscale"  # "upscale" | "downscale"
    pair: str | None = None  # the model that undoes this one (encoder <-> decoder)
    clean: str | None = None  # the clean model of the same architecture `--denoise` interpolates with
    faithful: str | None = None  # a sharp photo model: the faithful (L1) photo model of its scale
    bf16_delta_db: float | None = None  # measured bf16 − fp32 PSNR-Y on Set5+Set14
    # bundled
    path: str | None = None
    # hub
    repo: str | None = None
    revision: str | None = None
    filename: str | None = None
    config_filename: str | None = None

    @property
    def bf16_fits_auto(self) -> bool:
        """False when bf16 was measured to cost this model more than ``BF16_AUTO_MAX_LOSS_DB``."""
        return self.bf16_delta_db is None or self.bf16_delta_db >= -BF16_AUTO_MAX_LOSS_DB

    def hub_ref(self) -> HubRef:
        if self.source != "hub" or self.repo is None or self.filename is None:
            raise ModelLoadError(f"{self.name}: not a Hub model")
        return HubRef(repo_id=self.repo, revision=self.revision, path=self.filename)

    @property
    def location(self) -> str:
        """Where it lives, for ``jdsr models list``: the bundled folder or the hf:// URI."""
        if self.source == "bundled":
            return f"bundled:{self.path}"
        return self.hub_ref().uri

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "arch": self.arch, "scale": self.scale, "source": self.source}
        if self.description:
            out["description"] = self.description
        for key in ("path", "repo", "revision", "filename", "config_filename", "sha256"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.metrics:
            out["metrics"] = dict(self.metrics)
        if self.default_for_scale:
            out["default_for_scale"] = True
        if self.role != "upscale":
            out["role"] = self.role
        if self.pair is not None:
            out["pair"] = self.pair
        if self.clean is not None:
            out["clean"] = self.clean
        if self.faithful is not None:
            out["faithful"] = self.faithful
        if self.bf16_delta_db is not None:
            out["bf16_delta_db"] = self.bf16_delta_db
        return out


@dataclass(frozen=True)
class Manifest:
    """Typed, validated manifest. ``root`` is the folder bundled ``path``s are relative to."""

    root: Path
    entries: tuple[ManifestEntry, ...]
    file: Path | None = None

    def get(self, name: str) -> ManifestEntry | None:
        for entry in self.entries:
            if entry.name == name:
                return entry
        return None

    def require(self, name: str) -> ManifestEntry:
        entry = self.get(name)
        if entry is None:
            known = ", ".join(self.names()) or "none"
            raise ModelLoadError(f"unknown model {name!r}; known models: {known} (run `jdsr models list`)")
        return entry

    def names(self) -> list[str]:
        return [entry.name for entry in self.entries]

    def default_for_scale(self, scale: int, role: str = "upscale") -> ManifestEntry | None:
        for entry in self.entries:
            if entry.default_for_scale and entry.scale == scale and entry.role == role:
                return entry
        return None

    def bundled_folder(self, entry: ManifestEntry) -> Path:
        if entry.source != "bundled" or entry.path is None:
            raise ModelLoadError(f"{entry.name}: not a bundled model")
        return self.root / entry.path

    def training_record(self, entry: ManifestEntry) -> dict[str, Any] | None:
        """The ``training`` recipe of a bundled model's ``config.json`` (None for a Hub model or a checkpoint
        without one); read without loading the weights."""
        if entry.source != "bundled" or entry.path is None:
            return None
        try:
            meta = json.loads((self.root / entry.path / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        training = meta.get("training") if isinstance(meta, dict) else None
        return training if isinstance(training, dict) else None


def default_manifest_path() -> Path:
    """``manifest.json`` of the installed ``jdsr_weights`` package, or of ``weights/`` in a source tree."""
    try:
        from importlib.resources import files

        resource = files("jdsr_weights") / MANIFEST_NAME
        path = Path(str(resource))
        if path.is_file():
            return path
    except (ModuleNotFoundError, TypeError, ValueError):
        pass
    # running from a checkout that was not pip-installed: the top-level weights/ folder
    return Path(__file__).resolve().parents[2] / "weights" / MANIFEST_NAME


def load_manifest(path: str | os.PathLike[str] | None = None) -> Manifest:
    """Read and validate a manifest (a ``manifest.json`` file or the folder holding it).

    Default: the packaged one. Tests pass a manifest built in a temporary folder.
    """
    file = Path(path) if path is not None else default_manifest_path()
    if file.is_dir():
        file = file / MANIFEST_NAME
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(f"{file}: model manifest not found") from None
    except OSError as error:
        raise ManifestError(f"{file}: cannot read ({error.strerror or error})") from None
    except ValueError as error:
        raise ManifestError(f"{file}: not valid JSON ({error})") from None
    return parse_manifest(data, root=file.parent, origin=str(file))


def parse_manifest(data: Any, *, root: str | os.PathLike[str], origin: str = MANIFEST_NAME) -> Manifest:
    """Validate a decoded manifest; every error names the entry and the field."""
    if not isinstance(data, dict):
        raise ManifestError(f"{origin}: expected a JSON object with 'format_version' and 'models'")
    unknown = sorted(set(data) - {"format_version", "models"})
    if unknown:
        raise ManifestError(f"{origin}: unknown top-level key(s) {', '.join(unknown)}")
    version = data.get("format_version")
    if version != MANIFEST_FORMAT_VERSION:
        raise ManifestError(
            f"{origin}: format_version {version!r} is not supported (this jdsr reads {MANIFEST_FORMAT_VERSION})"
        )
    models = data.get("models")
    if not isinstance(models, list):
        raise ManifestError(f"{origin}: 'models' must be a list")

    entries: list[ManifestEntry] = []
    seen: set[str] = set()
    defaults: dict[tuple[str, int], str] = {}
    for index, raw in enumerate(models):
        entry = _parse_entry(raw, f"{origin}: model #{index + 1}")
        where = f"{origin}: model {entry.name!r}"
        if entry.name in seen:
            raise ManifestError(f"{where}: duplicate name")
        seen.add(entry.name)
        if entry.default_for_scale:
            key = (entry.role, entry.scale)
            if key in defaults:
                raise ManifestError(
                    f"{where}: a second default {entry.role} model for x{entry.scale} (already {defaults[key]!r})"
                )
            defaults[key] = entry.name
        entries.append(entry)
    file = Path(origin) if Path(origin).name == MANIFEST_NAME else None
    return Manifest(root=Path(root), entries=tuple(entries), file=file)


def _parse_entry(raw: Any, where: str) -> ManifestEntry:
    if not isinstance(raw, dict):
        raise ManifestError(f"{where}: expected an object")
    name = raw.get("name")
    if isinstance(name, str) and name:
        where = f"{where} ({name!r})"
    for key in _COMMON_REQUIRED:
        if key not in raw:
            raise ManifestError(f"{where}: missing field {key!r}")
    source = raw["source"]
    if source not in SOURCES:
        raise ManifestError(f"{where}: 'source' must be one of {', '.join(SOURCES)}, not {source!r}")
    required, optional = _SOURCE_FIELDS[source]
    for key in required:
        if key not in raw:
            raise ManifestError(f"{where}: missing field {key!r} (required for source {source!r})")
    allowed = set(_COMMON_REQUIRED) | set(_COMMON_OPTIONAL) | set(required) | set(optional)
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ManifestError(f"{where}: unknown field(s) {', '.join(unknown)} for source {source!r}")

    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ManifestError(f"{where}: 'name' must match [A-Za-z0-9][A-Za-z0-9._-]*, got {name!r}")
    arch = raw["arch"]
    if not isinstance(arch, str) or not arch:
        raise ManifestError(f"{where}: 'arch' must be a non-empty string")
    scale = raw["scale"]
    if not isinstance(scale, int) or isinstance(scale, bool) or scale < 1:
        raise ManifestError(f"{where}: 'scale' must be a positive integer, got {scale!r}")
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise ManifestError(f"{where}: 'description' must be a string")
    sha256 = raw.get("sha256")
    if sha256 is not None and (not isinstance(sha256, str) or not _SHA256_RE.match(sha256)):
        raise ManifestError(f"{where}: 'sha256' must be 64 lowercase hex digits, got {sha256!r}")
    metrics = raw.get("metrics", {})
    if not isinstance(metrics, dict):
        raise ManifestError(f"{where}: 'metrics' must be an object")
    default = raw.get("default_for_scale", False)
    if not isinstance(default, bool):
        raise ManifestError(f"{where}: 'default_for_scale' must be true or false")
    role = raw.get("role", "upscale")
    if role not in ROLES:
        raise ManifestError(f"{where}: 'role' must be one of {', '.join(ROLES)}, not {role!r}")
    pair = raw.get("pair")
    if pair is not None and (not isinstance(pair, str) or not _NAME_RE.match(pair)):
        raise ManifestError(f"{where}: 'pair' must be a model name, got {pair!r}")
    clean, faithful = raw.get("clean"), raw.get("faithful")
    for key, value in (("clean", clean), ("faithful", faithful)):
        if value is not None and (not isinstance(value, str) or not _NAME_RE.match(value)):
            raise ManifestError(f"{where}: {key!r} must be a model name, got {value!r}")
    bf16_delta = raw.get("bf16_delta_db")
    if bf16_delta is not None and (not isinstance(bf16_delta, (int, float)) or isinstance(bf16_delta, bool)):
        raise ManifestError(f"{where}: 'bf16_delta_db' must be a number (dB), got {bf16_delta!r}")

    fields: dict[str, Any] = {}
    if source == "bundled":
        fields["path"] = _relative_path(raw["path"], where, "path")
    else:
        repo = raw["repo"]
        if not isinstance(repo, str) or not _REPO_RE.match(repo):
            raise ManifestError(f"{where}: 'repo' must be 'owner/name', got {repo!r}")
        revision = raw["revision"]
        if not isinstance(revision, str) or not _COMMIT_RE.match(revision):
            raise ManifestError(
                f"{where}: 'revision' must pin a commit (40 lowercase hex digits), got {revision!r}"
            )
        fields.update(repo=repo, revision=revision, filename=_relative_path(raw["filename"], where, "filename"))
        if "config_filename" in raw:
            fields["config_filename"] = _relative_path(raw["config_filename"], where, "config_filename")
    return ManifestEntry(
        name=name,
        arch=arch,
        scale=scale,
        source=source,
        description=description,
        sha256=sha256,
        metrics=dict(metrics),
        default_for_scale=default,
        role=role,
        pair=pair,
        clean=clean,
        faithful=faithful,
        bf16_delta_db=None if bf16_delta is None else float(bf16_delta),
        **fields,
    )


def _relative_path(value: Any, where: str, key: str) -> str:
    if not isinstance(value, str) or not value:
        raise ManifestError(f"{where}: {key!r} must be a non-empty string")
    parts = value.split("/")
    if value.startswith("/") or "\\" in value or any(p in ("", ".", "..") for p in parts):
        raise ManifestError(f"{where}: {key!r} must be a relative path without '..', got {value!r}")
    return value
