"""``hf://owner/repo[@revision]/path`` references and ``owner/name`` repository ids: parsing and the files they name.

Kept apart from the downloads (``checkpoints.hub``) so that the manifest, which names Hub files, and the
downloader, which reads the manifest, do not import each other. No torch, no huggingface_hub.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

from jdsr_cli.checkpoints.format import CONFIG_NAME, WEIGHTS_NAME
from jdsr_cli.errors import UsageError

HF_SCHEME = "hf://"
WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin", ".ckpt")
_REPO_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class HubRef:
    """A file or folder in a Hub model repository: ``hf://owner/repo[@revision]/path``.

    ``path`` is ``""`` for the repository root. A folder (or the root) means its ``model.safetensors``
    plus ``config.json``.
    """

    repo_id: str
    revision: str | None
    path: str

    @property
    def uri(self) -> str:
        rev = f"@{self.revision}" if self.revision else ""
        return f"{HF_SCHEME}{self.repo_id}{rev}" + (f"/{self.path}" if self.path else "")

    def __str__(self) -> str:
        return self.uri

    def files(self) -> tuple[str, str | None, bool]:
        """``(weights filename, config filename or None, config required)`` inside the repo."""
        path = self.path
        lower = path.lower()
        if lower.endswith(".safetensors"):
            return path, _sibling(path, CONFIG_NAME), False
        if path == CONFIG_NAME or path.endswith("/" + CONFIG_NAME):
            return _sibling(path, WEIGHTS_NAME), path, True
        if lower.endswith(WEIGHT_SUFFIXES):
            return path, None, False
        return _join(path, WEIGHTS_NAME), _join(path, CONFIG_NAME), False


def is_hf_uri(text: str) -> bool:
    return text.startswith(HF_SCHEME)


def parse_hf_uri(uri: str) -> HubRef:
    """``hf://owner/repo[@revision][/path]`` -> HubRef. A revision with ``/`` is written ``%2F``."""
    if not is_hf_uri(uri):
        raise UsageError(f"{uri!r}: not an hf:// reference (expected hf://owner/repo[@revision]/path)")
    rest = uri[len(HF_SCHEME) :]
    parts = rest.split("/", 2)
    if len(parts) < 2:
        raise UsageError(f"{uri!r}: expected hf://owner/repo[@revision]/path")
    owner, name_rev = parts[0], parts[1]
    path = parts[2] if len(parts) == 3 else ""
    name, _, revision = name_rev.partition("@")
    if not _REPO_PART.match(owner) or not _REPO_PART.match(name):
        raise UsageError(f"{uri!r}: invalid repository {owner}/{name!s} (expected owner/name)")
    if "@" in name_rev and not revision:
        raise UsageError(f"{uri!r}: empty revision after '@'")
    path = path.strip("/")
    segments = path.split("/") if path else []
    if any(seg in ("", ".", "..") for seg in segments):
        raise UsageError(f"{uri!r}: invalid path {path!r} in the repository")
    return HubRef(repo_id=f"{owner}/{name}", revision=unquote(revision) or None, path=path)


def check_repo_id(repo_id: str) -> str:
    """``owner/name`` as the Hub spells it, or a UsageError naming --repo."""
    try:
        ref = parse_hf_uri(f"hf://{repo_id}")
    except UsageError:
        ref = None
    if ref is None or ref.revision or ref.path or repo_id.count("/") != 1:
        raise UsageError(f"--repo {repo_id!r}: expected owner/name (letters, digits, '.', '_', '-')")
    return ref.repo_id


def _sibling(path: str, name: str) -> str:
    head, _, _ = path.rpartition("/")
    return f"{head}/{name}" if head else name


def _join(folder: str, name: str) -> str:
    return f"{folder}/{name}" if folder else name
