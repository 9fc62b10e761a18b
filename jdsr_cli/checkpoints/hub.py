"""Downloads from the Hugging Face Hub, and the token an upload needs (the ``hf://`` references themselves:
``checkpoints.hubref``).

Every download goes through ``huggingface_hub.hf_hub_download``, so its cache layout and its
environment variables apply unchanged: ``HF_HOME`` / ``HF_HUB_CACHE`` (where files are cached),
``HF_ENDPOINT`` (which server), ``HF_HUB_OFFLINE=1`` (no network at all), ``HF_TOKEN`` (private repos).
huggingface_hub reads these when it is imported, i.e. when the process starts; jdsr passes no
``endpoint=`` / ``cache_dir=`` of its own, so there is a single source of truth.

A pinned revision (a 40-hex commit) that is already cached is served without any request; a
connection failure falls back to the cache; a file neither reachable nor cached is a one-line
``ModelLoadError`` that says how to go on, within seconds: before downloading a file that is not cached,
one request without retries tells whether the Hub answers at all. This module does not import torch.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from jdsr_cli import __version__
from jdsr_cli.checkpoints.digest import sha256_file
from jdsr_cli.checkpoints.hubref import HF_SCHEME, HubRef, is_hf_uri, parse_hf_uri
from jdsr_cli.checkpoints.manifest import Manifest, ManifestEntry, load_manifest
from jdsr_cli.errors import ModelLoadError, UsageError

_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
#: seconds the one request that tells whether the Hub answers may take before a file that is not cached fails
#: (huggingface_hub itself retries a dead connection for about 25 s, logging every try)
PROBE_TIMEOUT = 4.0
#: re-exported: ``from jdsr_cli.checkpoints.hub import HubRef, parse_hf_uri`` keeps working
__all__ = ["HF_SCHEME", "HubFiles", "HubRef", "cached_weights", "download_model", "fetch_checkpoint", "fetch_entry",
           "hub_cache_dir", "hub_endpoint", "hub_is_offline", "is_hf_uri", "parse_hf_uri"]


@dataclass(frozen=True)
class HubFiles:
    """Local paths (inside the huggingface_hub cache) of one fetched checkpoint."""

    ref: HubRef
    weights: Path
    config: Path | None
    sha256: str


# --------------------------------------------------------------------------------------- downloads


def fetch_checkpoint(
    ref: HubRef,
    *,
    sha256: str | None = None,
    config_filename: str | None = None,
    label: str | None = None,
) -> HubFiles:
    """Fetch the weights (and their config.json, when the repo has one) into the HF cache.

    ``sha256`` (from the manifest) is checked against the weights: a mismatch raises and leaves the
    cache untouched. ``label`` names the model in messages (a manifest name; default: the URI).
    """
    label = label or ref.uri
    weights_name, default_config, config_required = ref.files()
    config_name = config_filename or default_config
    weights = _download(ref, weights_name, label=label, required=True)
    assert weights is not None
    config = None
    if config_name is not None and not _known_missing(ref, config_name):
        config = _download(ref, config_name, label=label, required=config_required or config_filename is not None)
    actual = sha256_file(weights)
    if sha256 and sha256.lower() != actual:
        raise ModelLoadError(
            f"{label}: sha256 mismatch for {ref.repo_id}@{ref.revision or 'main'}/{weights_name}: "
            f"expected {sha256.lower()}, actual {actual} (the cached file {weights} was left in place; "
            "the manifest or the published file is wrong)"
        )
    return HubFiles(ref=ref, weights=weights, config=config, sha256=actual)


def download_model(name_or_ref: str, manifest: Manifest | None = None) -> Path:
    """``jdsr models download``: make a model available locally; return a path ``load_checkpoint`` accepts.

    ``name_or_ref`` is a manifest name or an ``hf://`` reference. Bundled models are already local
    (their folder is returned); Hub models return the cached weights file (its config.json sits next
    to it in the cache snapshot).
    """
    if is_hf_uri(name_or_ref):
        return fetch_checkpoint(parse_hf_uri(name_or_ref)).weights
    entry, manifest = _manifest_entry(name_or_ref, manifest)
    if entry.source == "bundled":
        return manifest.bundled_folder(entry)
    return fetch_entry(entry).weights


def fetch_entry(entry: ManifestEntry) -> HubFiles:
    """Fetch a manifest entry whose source is ``hub``."""
    if entry.source != "hub":
        raise ModelLoadError(f"{entry.name}: a bundled model, nothing to download")
    return fetch_checkpoint(
        entry.hub_ref(), sha256=entry.sha256, config_filename=entry.config_filename, label=entry.name
    )


def cached_weights(ref: HubRef) -> Path | None:
    """The cached weights file for ``ref`` without any network access (None when not cached)."""
    # local: start-up (huggingface_hub ~0.15 s; `jdsr upscale` imports this module even for a local model)
    from huggingface_hub import try_to_load_from_cache

    weights_name, _, _ = ref.files()
    found = try_to_load_from_cache(ref.repo_id, weights_name, revision=ref.revision)
    return Path(found) if isinstance(found, str) else None


def hub_cache_dir() -> str:
    """Where huggingface_hub caches files (``HF_HUB_CACHE``, default ``$HF_HOME/hub``)."""
    # local: start-up (huggingface_hub ~0.15 s; `jdsr upscale` imports this module even for a local model)
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def hub_is_offline() -> bool:
    # local: start-up (huggingface_hub ~0.15 s; `jdsr upscale` imports this module even for a local model)
    from huggingface_hub import constants

    return bool(constants.is_offline_mode())


def hub_endpoint() -> str:
    """The Hub's address as messages show it: ``HF_ENDPOINT`` without any ``user:password@`` in it."""
    # local: start-up (huggingface_hub ~0.15 s; `jdsr upscale` imports this module even for a local model)
    from huggingface_hub import constants

    return without_credentials(str(constants.ENDPOINT))


def require_token(repo_id: str) -> str:
    """huggingface_hub's token (HF_TOKEN, else ``hf auth login``'s file), or a UsageError before any work."""
    # local: start-up (huggingface_hub ~0.15 s; `jdsr upscale` imports this module even for a local model)
    from huggingface_hub import get_token

    token = get_token()
    if token is None:
        raise UsageError(f"--repo {repo_id}: no Hugging Face token: set HF_TOKEN or run `hf auth login` "
                         "(a token with write access)")
    return token


_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]*@")


def without_credentials(text: str) -> str:
    """``text`` with the user info of every URL in it (``http://user:secret@host``) replaced by ``***``."""
    return _USERINFO.sub(lambda m: f"{m['scheme']}***@", text)


# ---------------------------------------------------------------------------------------- helpers


def _download(ref: HubRef, filename: str, *, label: str, required: bool) -> Path | None:
    """One ``hf_hub_download``; every failure becomes a ModelLoadError (or None for optional files)."""
    # local: start-up (huggingface_hub ~0.15 s; `jdsr upscale` imports this module even for a local model)
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    offline = hub_is_offline()
    where = f"{ref.repo_id}@{ref.revision or 'main'}/{filename}"
    if not offline and not _cached(ref, filename):
        cause = _unreachable(ref, filename)
        if cause is not None:  # huggingface_hub would retry for ~25 s, logging each try, then fail the same way
            if not required:
                return None
            raise ModelLoadError(_not_cached_message(label, False, cause))
    try:
        local = hf_hub_download(
            ref.repo_id,
            filename,
            revision=ref.revision,
            local_files_only=offline,
            library_name="jdsr",
            library_version=__version__,
        )
    except RemoteEntryNotFoundError:
        if not required:
            return None
        raise ModelLoadError(f"{label}: {where} not found on {hub_endpoint()}") from None
    except RevisionNotFoundError:
        raise ModelLoadError(
            f"{label}: revision {ref.revision!r} not found in {ref.repo_id} on {hub_endpoint()}"
        ) from None
    except GatedRepoError:
        raise ModelLoadError(
            f"{label}: {ref.repo_id} is gated: accept its terms on the Hub and set HF_TOKEN"
        ) from None
    except RepositoryNotFoundError:
        raise ModelLoadError(
            f"{label}: repository {ref.repo_id} not found on {hub_endpoint()} "
            "(if it is private, set HF_TOKEN)"
        ) from None
    except LocalEntryNotFoundError as error:
        if not required:
            # the weights were found but the config is neither reachable nor cached: detect instead
            return None
        raise ModelLoadError(_not_cached_message(label, offline, error.__cause__ or error.__context__)) from None
    except HfHubHTTPError as error:
        status = getattr(getattr(error, "response", None), "status_code", "?")
        raise ModelLoadError(f"{label}: the Hub answered {status} for {where}: {_first_line(str(error))}") from None
    except (OSError, ValueError) as error:
        raise ModelLoadError(f"{label}: cannot download {where}: {_first_line(str(error))}") from None
    except Exception as error:  # transport errors of the HTTP client (proxy, TLS) are not OSErrors
        raise ModelLoadError(
            f"{label}: cannot download {where}: {type(error).__name__}: {_first_line(str(error))}"
        ) from None
    return Path(local)


def _known_missing(ref: HubRef, filename: str) -> bool:
    """True when the cache recorded that ``filename`` does not exist at this pinned commit.

    Absence at a commit never changes, so no request is needed. (Branches can change: always asked.)
    """
    if ref.revision is None or not _COMMIT_RE.match(ref.revision):
        return False
    # local: start-up (huggingface_hub ~0.15 s; `jdsr upscale` imports this module even for a local model)
    from huggingface_hub import _CACHED_NO_EXIST, try_to_load_from_cache

    return try_to_load_from_cache(ref.repo_id, filename, revision=ref.revision) is _CACHED_NO_EXIST


def _cached(ref: HubRef, filename: str) -> bool:
    """Whether the cache holds ``filename`` at ``ref``'s revision (a branch: the commit it last pointed to)."""
    # local: start-up (huggingface_hub ~0.15 s; `jdsr upscale` imports this module even for a local model)
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(ref.repo_id, filename, revision=ref.revision), str)


def _unreachable(ref: HubRef, filename: str) -> BaseException | None:
    """One metadata request, without retries: why the Hub cannot be reached, or None when it answers.

    Any answer, even an error status, is left to ``hf_hub_download`` (it has the precise messages).
    """
    # local: start-up (huggingface_hub ~0.15 s; `jdsr upscale` imports this module even for a local model)
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.errors import HfHubHTTPError

    url = hf_hub_url(ref.repo_id, filename, revision=ref.revision)
    try:
        get_hf_file_metadata(url, timeout=_probe_timeout(), library_name="jdsr", library_version=__version__)
    except HfHubHTTPError:
        return None
    except Exception as error:  # the HTTP client's connection, proxy, TLS and timeout errors
        return error
    return None


def _probe_timeout() -> float:
    """Seconds the reachability request may take: ``HF_HUB_ETAG_TIMEOUT`` if set (a slow link), else 4."""
    try:
        return float(os.environ.get("HF_HUB_ETAG_TIMEOUT", PROBE_TIMEOUT))
    except ValueError:
        return PROBE_TIMEOUT


def _not_cached_message(label: str, offline: bool, cause: BaseException | None) -> str:
    """One line: why the file is not here, and the three ways on (download, copy the cache, go offline)."""
    cache = _pretty_path(hub_cache_dir())
    fix = f"run `jdsr models download {label}` on a machine with network access, or copy the cache (HF_HOME)"
    if offline:
        return f"{label} is not in the local cache ({cache}) and the Hub is offline (HF_HUB_OFFLINE=1): {fix}"
    detail = f" ({type(cause).__name__}: {without_credentials(_first_line(str(cause)))})" if cause else ""
    return (
        f"{label} is not in the local cache ({cache}) and the Hub could not be reached at {hub_endpoint()}{detail}: "
        f"{fix}; without network, set HF_HUB_OFFLINE=1 to use the cache without trying the Hub"
    )


def _manifest_entry(name: str, manifest: Manifest | None) -> tuple[ManifestEntry, Manifest]:
    manifest = manifest if manifest is not None else load_manifest()
    return manifest.require(name), manifest


def _pretty_path(path: str) -> str:
    home = os.path.expanduser("~")
    if home not in ("", "/") and (path == home or path.startswith(home + os.sep)):
        return "~" + path[len(home) :]
    return path


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return text.strip()
