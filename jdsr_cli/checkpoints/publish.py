"""``jdsr models publish``: a checkpoint as a Hugging Face Hub model repository, and its manifest entry.

The published folder holds the checkpoint's own ``model.safetensors`` and ``config.json`` byte for byte, so the
weights keep the sha256 that config.json (and any manifest) names, plus a model card ``README.md``
(``checkpoints.modelcard``). ``HfApi.upload_folder`` sends the three files as one commit; its oid is what a
manifest Hub entry pins (``revision``). The model is loaded, i.e. verified, before anything is written.

huggingface_hub finds the token (``HF_TOKEN``, else the token file ``hf auth login`` writes) and the server
(``HF_ENDPOINT``) itself, as for downloads (``checkpoints.hub``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jdsr_cli import __version__
from jdsr_cli.checkpoints.digest import sha256_file
from jdsr_cli.checkpoints.format import CONFIG_NAME, WEIGHTS_NAME
from jdsr_cli.checkpoints.hub import fetch_checkpoint, fetch_entry, require_token, without_credentials
from jdsr_cli.checkpoints.hubref import check_repo_id, is_hf_uri, parse_hf_uri
from jdsr_cli.checkpoints.load import LoadedModel, load_checkpoint_files
from jdsr_cli.checkpoints.manifest import load_manifest
from jdsr_cli.checkpoints.modelcard import CARD_NAME, CardFacts, is_local_path, metric_sets, render_card
from jdsr_cli.checkpoints.recipe import locate_checkpoint_files
from jdsr_cli.checkpoints.resolve import load_entry, looks_like_path
from jdsr_cli.checkpoints.save import encode_checkpoint
from jdsr_cli.checkpoints.swap import recover_missing
from jdsr_cli.errors import JdsrError, ModelLoadError, UsageError, one_line
from jdsr_cli.io.atomic import atomic_write_bytes, atomic_write_text

PUBLISHED_FILES = (WEIGHTS_NAME, CONFIG_NAME, CARD_NAME)
#: what a dry run wrote into its folder (file name -> sha256): only those files may be replaced by a rerun
MARKER_NAME = ".jdsr-publish.json"
#: manifest entry fields a published model keeps from its bundled entry (the rest say where it lives)
_KEPT_FIELDS = ("description", "metrics", "default_for_scale", "role", "pair", "clean")


@dataclass(frozen=True)
class PublishSource:
    """A verified model and the files it was loaded from (``config`` None: written from the recipe)."""

    loaded: LoadedModel
    weights: Path
    config: Path | None


@dataclass(frozen=True)
class PublishPlan:
    """A folder ready to upload: what is in it, where it goes, and the manifest entry it will make."""

    folder: Path
    repo_id: str
    private: bool
    name: str
    sha256: str
    sizes: dict[str, int]
    entry: dict[str, Any]
    warnings: tuple[str, ...] = ()  # e.g. config.json names local paths (it is published byte for byte)

    def manifest_entry(self, commit: str) -> dict[str, Any]:
        """The ``weights/manifest.json`` Hub entry that serves this model from ``commit``."""
        return {key: (commit if key == "revision" else value) for key, value in self.entry.items()}


@dataclass(frozen=True)
class Published:
    """The commit an upload made (what a manifest entry pins), its page, and the ``hf://`` URI of the weights."""

    commit: str
    commit_url: str
    uri: str


def locate_publishable(spec: str | os.PathLike[str]) -> PublishSource:
    """What ``jdsr models publish`` takes: a run folder (its best checkpoint, else its last), a checkpoint folder or
    file, a name from ``jdsr models list`` or an ``hf://`` reference, loaded and verified."""
    text = os.fspath(spec)
    if is_hf_uri(text):
        files = fetch_checkpoint(parse_hf_uri(text))
        return PublishSource(load_checkpoint_files(files.weights, files.config, source=text), files.weights, files.config)
    if not looks_like_path(text):
        manifest = load_manifest()
        entry = manifest.get(text)
        if entry is not None:
            loaded = load_entry(entry, manifest)
            if entry.source == "hub":
                files = fetch_entry(entry)  # cached by load_entry: no request
                return PublishSource(loaded, files.weights, files.config)
            folder = manifest.bundled_folder(entry)
            return PublishSource(loaded, folder / WEIGHTS_NAME, folder / CONFIG_NAME)
        if not Path(text).exists():
            raise ModelLoadError(f"RUN_OR_MODEL {text!r}: not a run folder, a checkpoint, an hf:// reference or a known "
                                 f"model name; known models: {', '.join(manifest.names()) or 'none'}")
    weights, config = locate_checkpoint_files(checkpoint_of_run(Path(text).expanduser()))
    return PublishSource(load_checkpoint_files(weights, config, source=text), weights, config)


def checkpoint_of_run(path: Path) -> Path:
    """A ``jdsr train --out`` folder stands for its ``best`` checkpoint (else ``last``); other paths for themselves."""
    if not path.is_dir() or (path / WEIGHTS_NAME).exists():
        return path
    for which in ("best", "last"):
        folder = path / which
        if not folder.exists():  # a save killed between its two renames: finish it first
            recover_missing(folder)
        if (folder / WEIGHTS_NAME).is_file():
            return folder
        parts = sorted(p.name for p in folder.iterdir() if (p / WEIGHTS_NAME).is_file()) if folder.is_dir() else []
        if parts:
            raise UsageError(f"{folder} holds {len(parts)} checkpoints ({', '.join(parts)}): publish each in its own "
                             f"repository, e.g. jdsr models publish {folder / parts[-1]} --repo OWNER/NAME")
    return path  # locate_checkpoint_files says what is missing


def prepare_publish_folder(source: PublishSource, folder: str | os.PathLike[str], repo_id: str, *,
                           private: bool = False) -> PublishPlan:
    """Write ``model.safetensors``, ``config.json`` and ``README.md`` into ``folder`` (created; it may hold only
    these files, so that what is uploaded is exactly what was written).

    Each file is written atomically (a temp file renamed over the name: a link there is replaced, never written
    through), and ``MARKER_NAME`` records their sha256, so that a later dry run into the same folder replaces
    exactly the files this one wrote and nothing else.
    """
    repo_id = check_repo_id(repo_id)
    target = _publish_folder(Path(folder))
    loaded = source.loaded
    try:
        if source.config is not None and source.weights.suffix.lower() == ".safetensors":
            weights, config = source.weights.read_bytes(), source.config.read_bytes()
        else:  # a lone or legacy weights file: the checkpoint format, recipe included
            meta = loaded.meta
            encoded = encode_checkpoint(loaded.model, loaded.config, name=loaded.name, training=meta.get("training"),
                                        metrics=meta.get("metrics"), where=target)
            weights, config = encoded.weights, encoded.config_text.encode("utf-8")
        meta = json.loads(config.decode("utf-8"))
        sha256 = hashlib.sha256(weights).hexdigest()
        entry = loaded.entry.to_dict() if loaded.entry is not None else {}
        facts = CardFacts(
            name=loaded.name, repo_id=repo_id, meta=meta, sha256=sha256,
            parameters=sum(p.numel() for p in loaded.model.parameters()),
            metrics=metric_sets(entry.get("metrics"), meta.get("metrics")), description=entry.get("description", ""),
            role=entry.get("role", "upscale"), pair=entry.get("pair"),
        )
        _write_marked(target, {WEIGHTS_NAME: weights, CONFIG_NAME: config,
                               CARD_NAME: render_card(facts).encode("utf-8")})
    except OSError as error:
        raise JdsrError(f"{target}: cannot write the publish folder ({error.strerror or error})") from None
    return PublishPlan(folder=target, repo_id=repo_id, private=private, name=loaded.name, sha256=sha256,
                       sizes={name: (target / name).stat().st_size for name in PUBLISHED_FILES},
                       entry=_hub_entry(loaded, repo_id, sha256, entry), warnings=_path_warnings(meta))


def local_path_keys(value: Any, key: str = "") -> list[str]:
    """The dotted keys of ``value`` (config.json) whose strings name absolute local paths."""
    if isinstance(value, dict):
        return [found for k, v in value.items() for found in local_path_keys(v, f"{key}.{k}" if key else str(k))]
    if isinstance(value, list):
        return list(dict.fromkeys(found for i, v in enumerate(value) for found in local_path_keys(v, f"{key}[{i}]")))
    return [key] if isinstance(value, str) and is_local_path(value) else []


def _path_warnings(meta: dict[str, Any]) -> tuple[str, ...]:
    """config.json is published as it is (its bytes are the checkpoint's); say which local paths it gives away
    (the card shows only their last component)."""
    keys = local_path_keys(meta)
    if not keys:
        return ()
    shown = ", ".join(keys[:4]) + (f" (+{len(keys) - 4} more)" if len(keys) > 4 else "")
    return (f"{CONFIG_NAME} names absolute local paths, published as they are: {shown} (they may show user names "
            "and folders; the model card shows only their last component)",)


def upload_folder(plan: PublishPlan, *, endpoint: str | None = None) -> Published:
    """Create ``plan.repo_id`` if needed and upload the folder as one commit; any failure is one JdsrError line."""
    # local: start-up (huggingface_hub's HfApi ~0.2 s; `jdsr models publish --dry-run` never needs it)
    from huggingface_hub import HfApi

    token = require_token(plan.repo_id)
    api = HfApi(endpoint=endpoint, token=token, library_name="jdsr", library_version=__version__)
    try:
        with _quiet_hub_logs():
            api.create_repo(plan.repo_id, private=plan.private, exist_ok=True)
            info = api.upload_folder(repo_id=plan.repo_id, folder_path=plan.folder, allow_patterns=list(PUBLISHED_FILES),
                                     commit_message=f"jdsr models publish {plan.name}")
    except Exception as error:  # HTTP errors, the HTTP client's connection errors, Xet errors: all end here
        raise JdsrError(without_credentials(f"--repo {plan.repo_id}: upload to {api.endpoint} failed: "
                                            f"{_reason(error)}")) from None
    commit = str(info.oid)
    return Published(commit=commit, commit_url=str(info.commit_url),
                     uri=f"hf://{plan.repo_id}@{commit}/{WEIGHTS_NAME}")


# ---------------------------------------------------------------------------------------- helpers


def _publish_folder(folder: Path) -> Path:
    """``folder``, created, holding none but the files a publish writes (a rerun of the same dry run is fine)."""
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{folder}: not a folder")
    if folder.is_dir():
        others = sorted(p.name for p in folder.iterdir() if p.name not in (*PUBLISHED_FILES, MARKER_NAME))
        if others:
            raise UsageError(f"{folder}: holds other files ({', '.join(others[:5])}); give an empty or new folder")
        foreign = [name for name in PUBLISHED_FILES
                   if os.path.lexists(folder / name) and not _written_by_us(folder, name)]
        if foreign:
            raise UsageError(f"{folder}: holds a {', '.join(foreign)} that no earlier `jdsr models publish` wrote; "
                             "give an empty or new folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise JdsrError(f"{folder}: cannot create ({error.strerror or error})") from None
    return folder


def _written_by_us(folder: Path, name: str) -> bool:
    """A file an earlier dry run left (so a rerun may replace it): a regular file whose sha256 ``MARKER_NAME``
    records. Anything else (a link, a checkpoint of the user's, their own README.md) is not written over."""
    path = folder / name
    if path.is_symlink() or not path.is_file():
        return False
    return sha256_file(path) in _marked(folder).get(name, ())


def _marked(folder: Path) -> dict[str, list[str]]:
    """``MARKER_NAME``'s record, ``{file name: [sha256, ...]}`` (empty when missing, a link or unreadable)."""
    marker = folder / MARKER_NAME
    try:
        if marker.is_symlink():
            return {}
        record = json.loads(marker.read_text(encoding="utf-8"))
        files = record["files"]
        return {str(k): [str(d) for d in v] for k, v in files.items() if isinstance(v, list)}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def _write_marked(folder: Path, contents: dict[str, bytes]) -> None:
    """Write ``contents`` atomically, each file recorded in the marker before it is written (the earlier hashes too,
    until every file is in place), so a kill at any point leaves a folder the next dry run may replace."""
    digests = {name: hashlib.sha256(data).hexdigest() for name, data in contents.items()}
    earlier = _marked(folder)

    def record(files: dict[str, list[str]]) -> None:
        atomic_write_text(folder / MARKER_NAME, json.dumps({"written_by": "jdsr models publish --dry-run",
                                                            "files": files}, indent=2, sort_keys=True) + "\n")

    record({name: sorted({digests[name], *earlier.get(name, ())}) for name in contents})
    for name, data in contents.items():
        atomic_write_bytes(folder / name, data)
    record({name: [digest] for name, digest in digests.items()})


def _hub_entry(loaded: LoadedModel, repo_id: str, sha256: str, bundled: dict[str, Any]) -> dict[str, Any]:
    """The manifest entry (``revision`` filled in after the upload); a bundled model's other fields carry over."""
    entry: dict[str, Any] = {"name": loaded.name, "arch": loaded.config.arch, "scale": loaded.config.scale,
                             "source": "hub", "repo": repo_id, "revision": None, "filename": WEIGHTS_NAME,
                             "config_filename": CONFIG_NAME, "sha256": sha256}
    entry.update({key: bundled[key] for key in _KEPT_FIELDS if key in bundled})
    if "metrics" not in entry and any(isinstance(v, dict) for v in (loaded.meta.get("metrics") or {}).values()):
        entry["metrics"] = dict(loaded.meta["metrics"])
    return entry


def _reason(error: BaseException) -> str:
    """One line: the Hub's status and message, or the transport's error, with what to do about a refused token."""
    # local: start-up (huggingface_hub ~0.15 s; `jdsr models publish --dry-run` never needs it)
    from huggingface_hub.errors import HfHubHTTPError

    if isinstance(error, HfHubHTTPError) and error.response is not None:
        status = error.response.status_code
        message = one_line(Exception(error.server_message or str(error)))
        hint = "; check that the token (HF_TOKEN or `hf auth login`) may write to it" if status in (401, 403) else ""
        return f"the Hub answered {status}: {message}{hint}"
    return f"{type(error).__name__}: {one_line(error)}"


@contextmanager
def _quiet_hub_logs() -> Iterator[None]:
    """huggingface_hub logs each retry and progress line; the command reports the outcome in one line instead."""
    logger = logging.getLogger("huggingface_hub")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
