"""``--model`` -> a loaded model.

Accepted forms, tried in this order:

1. nothing (``None``): the manifest's default for the requested scale (x4 when none is requested);
2. ``hf://owner/repo[@revision]/path``: downloaded through the huggingface_hub cache;
3. a manifest name (``jdsr models list``): the bundled folder or its pinned Hub file;
4. an existing file or folder: ``load_checkpoint``.

The requested scale picks the default model, and disambiguates a *detected* recipe whose weights fit
several scales (FSRCNN, PAN x2/x3 without a config.json). Otherwise a model of another scale is
returned as is (``LoadedModel.model_scale``) and the caller decides what to do about it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from jdsr_cli.checkpoints.digest import sha256_file
from jdsr_cli.checkpoints.format import WEIGHTS_NAME
from jdsr_cli.checkpoints.hub import fetch_checkpoint, fetch_entry
from jdsr_cli.checkpoints.hubref import is_hf_uri, parse_hf_uri
from jdsr_cli.checkpoints.load import LoadedModel, load_checkpoint, load_checkpoint_files
from jdsr_cli.checkpoints.manifest import Manifest, ManifestEntry, load_manifest
from jdsr_cli.checkpoints.swap import recover_missing
from jdsr_cli.errors import ModelLoadError

if TYPE_CHECKING:
    from jdsr_cli.archs.registry import ArchRegistry

DEFAULT_SCALE = 4


def resolve_model(
    spec: str | os.PathLike[str] | None,
    *,
    scale: int | None,
    manifest: Manifest | None = None,
    registry: ArchRegistry | None = None,
    map_location: str = "cpu",
    role: str = "upscale",
    option: str = "--model",
) -> LoadedModel:
    """Load what ``--model`` names (see the module docstring). Never changes or checks the scale.

    ``role`` only picks the default (``downscale``: the default learned downscaler of the scale);
    ``option`` is the flag the errors name (e.g. ``--init``).
    """
    if spec is None:
        manifest = manifest if manifest is not None else load_manifest()
        wanted = scale or DEFAULT_SCALE
        entry = manifest.default_for_scale(wanted, role)
        if entry is None:
            available = ", ".join(f"{e.name} (x{e.scale})" for e in manifest.entries if e.role == role) or "none"
            raise ModelLoadError(
                f"no default {role} model for x{wanted}; pass {option} (a checkpoint file or folder, an hf:// "
                f"reference, or a name from `jdsr models list`; available: {available})"
            )
        return load_entry(entry, manifest, registry=registry, map_location=map_location)

    text = os.fspath(spec)
    if is_hf_uri(text):
        files = fetch_checkpoint(parse_hf_uri(text))
        return load_checkpoint_files(
            files.weights,
            files.config,
            registry=registry,
            map_location=map_location,
            source=text,
            scale_hint=scale,
        )

    if not looks_like_path(text):
        manifest = manifest if manifest is not None else load_manifest()
        entry = manifest.get(text)
        if entry is not None:
            return load_entry(entry, manifest, registry=registry, map_location=map_location)

    path = Path(text).expanduser()
    if not path.exists():  # a checkpoint save killed between its two renames: finish it first
        recover_missing(path)
    if path.exists():
        return load_checkpoint(path, registry=registry, map_location=map_location, scale_hint=scale)

    if looks_like_path(text):
        raise ModelLoadError(f"{option} {text}: no such file or folder")
    manifest = manifest if manifest is not None else load_manifest()
    known = ", ".join(manifest.names()) or "none"
    raise ModelLoadError(
        f"{option} {text!r}: not a file, a folder, an hf:// reference or a known model name; "
        f"known models: {known} (run `jdsr models list`)"
    )


def load_entry(
    entry: ManifestEntry,
    manifest: Manifest,
    *,
    registry: ArchRegistry | None = None,
    map_location: str = "cpu",
) -> LoadedModel:
    """Load a manifest entry (bundled folder or Hub download) and check it is what the entry says."""
    if entry.source == "bundled":
        folder = manifest.bundled_folder(entry)
        if not folder.exists():
            raise ModelLoadError(
                f"{entry.name}: bundled checkpoint folder {folder} is missing (broken installation?)"
            )
        loaded = load_checkpoint(folder, registry=registry, map_location=map_location, scale_hint=entry.scale)
        if entry.sha256:
            weights = folder / WEIGHTS_NAME if folder.is_dir() else folder
            # load_checkpoint has already hashed the file and checked it against config.json; reuse that digest
            actual = loaded.meta.get("weights_sha256") or sha256_file(weights)
            if actual != entry.sha256:
                raise ModelLoadError(
                    f"{entry.name}: sha256 mismatch for {weights}: expected {entry.sha256} (manifest), actual {actual}"
                )
    else:
        files = fetch_entry(entry)
        loaded = load_checkpoint_files(
            files.weights,
            files.config,
            registry=registry,
            map_location=map_location,
            source=files.ref.uri,
            scale_hint=entry.scale,
        )
    if loaded.config.arch != entry.arch or loaded.config.scale != entry.scale:
        raise ModelLoadError(
            f"{entry.name}: the manifest says {entry.arch} x{entry.scale} but the checkpoint is "
            f"{loaded.config.arch} x{loaded.config.scale}"
        )
    loaded.name = entry.name
    loaded.entry = entry
    return loaded


def looks_like_path(text: str) -> bool:
    """Explicit path syntax: a separator, a leading '.' or '~', or a checkpoint suffix."""
    return (
        "/" in text
        or os.sep in text
        or text.startswith((".", "~"))
        or text.lower().endswith((".safetensors", ".pth", ".pt", ".bin", ".ckpt", ".json", ".param"))
    )
