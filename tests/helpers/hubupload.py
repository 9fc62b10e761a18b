"""The write side of tests/helpers/hubserver.py: what huggingface_hub 2.x ``create_repo`` and ``upload_folder`` send.

* ``POST /api/repos/create`` ``{"name", "organization", "visibility"?}`` -> 200 ``{"url", "name", "id"}``; the
  repository starts, as on the Hub, with one commit holding ``.gitattributes``; 409 (with its ``url``, which
  ``create_repo(exist_ok=True)`` reads) when it exists;
* ``POST /api/models/{repo}/preupload/{branch}`` ``{"files": [{"path", "sample", "size"}]}`` -> every file
  ``"regular"``, so the contents arrive base64-inlined in the commit and no LFS or Xet endpoint is needed;
  ``oid`` is the git blob sha1 of the file already on the branch, so the client skips unchanged files as it
  does against the Hub;
* ``POST /api/models/{repo}/commit/{branch}`` (NDJSON: a ``header``, then ``file`` / ``deletedFile`` /
  ``deletedFolder`` lines) -> a new 40-hex commit (sha1 of its parent and the payload) holding the parent's
  files with the changes applied; the branch moves to it; ``{"commitUrl", "commitOid", ...}``. A README.md
  whose metadata the Hub would refuse fails the commit with 400, as on the Hub;
* ``POST /api/validate-yaml`` ``{"content"}`` -> 400 with the same checks (create_commit asks before uploading);
* ``GET /api/models/{repo}[/revision/{rev}]`` -> ``{"id", "sha", "private", "siblings"}`` (``repo_info``, which
  an upload that changed nothing reports its commit from).

Writes need ``Authorization: Bearer <token>`` (any token, or one of ``tokens`` when given); otherwise 401
``Invalid credentials in Authorization header``. ``fail["create" | "preupload" | "commit"] = status`` makes
that endpoint answer ``status`` instead, to test failures. Every commit is kept in ``commits``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import unquote, urlsplit

GITATTRIBUTES = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n*.bin filter=lfs diff=lfs merge=lfs -text\n"
_REPO_API = re.compile(r"^/api/models/([^/]+)/([^/]+)(?:/revision/(.+))?$")
_WRITE_API = re.compile(r"^/api/models/([^/]+)/([^/]+)/(preupload|commit)/(.+)$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def git_blob_sha1(data: bytes) -> str:
    """The id git gives a file's contents (the Hub's ETag and preupload ``oid`` of a regular file)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class Refused(Exception):
    """An answer other than 200: ``status``, the message, and the ``X-Error-Code`` the client dispatches on."""

    def __init__(self, status: int, message: str, code: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.extra = status, message, code, extra


def card_metadata_errors(readme: str) -> list[str]:
    """Why the Hub would refuse README.md's YAML front matter (none: [])."""
    import yaml

    if not readme.startswith("---\n"):
        return []  # no metadata at all is allowed
    end = readme.find("\n---", 4)
    if end < 0:
        return ["the metadata block is not closed by a '---' line"]
    try:
        meta = yaml.safe_load(readme[4:end])
    except yaml.YAMLError as error:
        return [f"invalid YAML: {error}"]
    if not isinstance(meta, dict):
        return ["the metadata is not a mapping"]
    errors = [f"'{key}' must be a string" for key in ("library_name", "license", "pipeline_tag")
              if key in meta and not isinstance(meta[key], str)]
    if "tags" in meta and not (isinstance(meta["tags"], list) and all(isinstance(t, str) for t in meta["tags"])):
        errors.append("'tags' must be a list of strings")
    for index, model in enumerate(meta.get("model-index") or []):
        for result in (model or {}).get("results") or [{}]:
            if not (result.get("task") or {}).get("type"):
                errors.append(f"model-index[{index}]: a result without task.type")
            dataset = result.get("dataset") or {}
            if not dataset.get("type") or not dataset.get("name"):
                errors.append(f"model-index[{index}]: a result without dataset.type and dataset.name")
            if not result.get("metrics") or any("type" not in m or "value" not in m for m in result["metrics"]):
                errors.append(f"model-index[{index}]: a result whose metrics lack type or value")
    return errors


class UploadMixin:
    """Mixed into HubServer, which provides the attributes below and calls ``_init_uploads`` first."""

    files: dict[tuple[str, str, str], bytes]
    branches: dict[tuple[str, str], str]
    requests: list[tuple[str, str]]
    endpoint: str
    _lock: threading.Lock

    def _init_uploads(self, tokens: Iterable[str] | None) -> None:
        self.tokens = None if tokens is None else set(tokens)
        self.repos: dict[str, dict[str, Any]] = {}  # created here: repo_id -> {"private": bool}
        self.commits: list[dict[str, Any]] = []  # repo, oid, parent, summary, added, deleted
        self.fail: dict[str, int] = {}

    def repo_exists(self, repo_id: str) -> bool:
        return repo_id in self.repos or any(r == repo_id for (r, _, _) in self.files)

    # ------------------------------------------------------------------ dispatch
    def _post(self, handler: BaseHTTPRequestHandler) -> None:
        with self._lock:
            self.requests.append((handler.command, handler.path))
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        try:
            status, payload = self._route_post(handler, urlsplit(handler.path).path, body)
        except Refused as refusal:
            return _send(handler, refusal.status, {"error": refusal.message, **refusal.extra}, code=refusal.code)
        _send(handler, status, payload)

    def _route_post(self, handler: BaseHTTPRequestHandler, path: str, body: bytes) -> tuple[int, Any]:
        if path == "/api/validate-yaml":
            errors = card_metadata_errors(str(json.loads(body).get("content", "")))
            return (400 if errors else 200), {"errors": [{"message": e} for e in errors], "warnings": []}
        if not self._authorized(handler):
            raise Refused(401, "Invalid credentials in Authorization header")
        if path == "/api/repos/create":
            return 200, self._create(json.loads(body))
        match = _WRITE_API.match(path)
        if match is None:
            raise Refused(404, f"no such endpoint: POST {path}")
        owner, name, action, branch = (unquote(part) for part in match.groups())
        if action in self.fail:
            raise Refused(self.fail[action], f"{action} refused (test failure)")
        repo_id = f"{owner}/{name}"
        if action == "preupload":
            return 200, self._preupload(repo_id, branch, json.loads(body))
        return 200, self._commit(repo_id, branch, body)

    def _api_get(self, handler: BaseHTTPRequestHandler, *, send_body: bool) -> None:
        """``repo_info``: the repository at a branch or commit (default main)."""
        match = _REPO_API.match(urlsplit(handler.path).path)
        try:
            if match is None:
                raise Refused(404, "no such endpoint")
            repo_id, revision = f"{unquote(match[1])}/{unquote(match[2])}", unquote(match[3] or "main")
            with self._lock:
                commit = self.branches.get((repo_id, revision), revision)
                paths = sorted(p for (r, c, p) in self.files if r == repo_id and c == commit)
                if not self.repo_exists(repo_id):
                    raise Refused(404, f"Repository {repo_id} not found", "RepoNotFound")
            if not paths:
                raise Refused(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        except Refused as refusal:
            return _send(handler, refusal.status, {"error": refusal.message}, code=refusal.code, send_body=send_body)
        info = {"id": repo_id, "modelId": repo_id, "sha": commit, "siblings": [{"rfilename": p} for p in paths],
                "private": bool(self.repos.get(repo_id, {}).get("private"))}
        _send(handler, 200, info, send_body=send_body)

    # ------------------------------------------------------------------ endpoints
    def _create(self, payload: dict[str, Any]) -> dict[str, Any]:
        """A new repository whose main branch holds one commit with .gitattributes, as the Hub makes them."""
        if "create" in self.fail:
            raise Refused(self.fail["create"], "create refused (test failure)")
        owner, name = str(payload.get("organization") or "user"), str(payload.get("name") or "")
        if payload.get("type", "model") != "model" or not _NAME.match(owner) or not _NAME.match(name):
            raise Refused(400, f"invalid repository {owner}/{name} (this server holds models only)")
        repo_id = f"{owner}/{name}"
        initial = hashlib.sha1(f"initial commit of {repo_id}".encode()).hexdigest()
        with self._lock:
            if self.repo_exists(repo_id):
                raise Refused(409, "You already created this model repo", url=f"{self.endpoint}/{repo_id}")
            self.repos[repo_id] = {"private": payload.get("visibility") == "private"}
            self.files[(repo_id, initial, ".gitattributes")] = GITATTRIBUTES
            self.branches[(repo_id, "main")] = initial
        return {"url": f"{self.endpoint}/{repo_id}", "name": repo_id, "id": initial[:24]}

    def _preupload(self, repo_id: str, branch: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Every file regular; ``oid`` = the blob already there, so the client drops unchanged files."""
        with self._lock:
            head = self._head(repo_id, branch)
            existing = {item["path"]: self.files.get((repo_id, head, item["path"])) for item in payload.get("files", [])}
        return {"files": [{"path": path, "uploadMode": "regular", "shouldIgnore": False,
                           "oid": git_blob_sha1(data) if data is not None else None} for path, data in existing.items()]}

    def _commit(self, repo_id: str, branch: str, body: bytes) -> dict[str, Any]:
        """Apply the NDJSON operations to the branch head's files as one new commit; move the branch."""
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise Refused(400, "the commit payload does not start with a header")
        header = lines[0]["value"]
        with self._lock:
            head = self._head(repo_id, branch)
            if header.get("parentCommit") not in (None, head):
                raise Refused(412, f"A commit has happened since {header['parentCommit']}")
            tree = {p: data for (r, c, p), data in self.files.items() if r == repo_id and c == head}
            added, deleted = _apply(tree, lines[1:])
            errors = card_metadata_errors(tree["README.md"].decode("utf-8", "replace")) if "README.md" in added else []
            if errors:
                raise Refused(400, "Invalid metadata in README.md: " + "; ".join(errors))
            oid = hashlib.sha1(head.encode() + body).hexdigest()
            self.files.update({(repo_id, oid, path): data for path, data in tree.items()})
            self.branches[(repo_id, branch)] = oid
            self.commits.append({"repo": repo_id, "oid": oid, "parent": head, "summary": header.get("summary"),
                                 "added": added, "deleted": deleted})
        return {"success": True, "commitOid": oid, "commitUrl": f"{self.endpoint}/{repo_id}/commit/{oid}",
                "pullRequestUrl": None, "hookOutput": ""}

    # ------------------------------------------------------------------ helpers
    def _head(self, repo_id: str, branch: str) -> str:
        """The commit ``branch`` points to (call with the lock held); commits go to branches only."""
        if not self.repo_exists(repo_id):
            raise Refused(404, f"Repository {repo_id} not found", "RepoNotFound")
        head = self.branches.get((repo_id, branch))
        if head is None:
            raise Refused(404, f"Invalid rev id: {branch} (not a branch)", "RevisionNotFound")
        return head

    def _authorized(self, handler: BaseHTTPRequestHandler) -> bool:
        scheme, _, token = (handler.headers.get("Authorization") or "").partition(" ")
        return scheme.lower() == "bearer" and bool(token) and (self.tokens is None or token in self.tokens)


def _apply(tree: dict[str, bytes], operations: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """Apply commit operations to ``tree`` in place; ``(added, deleted)`` paths."""
    added: list[str] = []
    deleted: list[str] = []
    for operation in operations:
        key, value = operation.get("key"), operation.get("value") or {}
        if key == "file" and value.get("encoding") == "base64":
            tree[value["path"]] = base64.b64decode(value["content"])
            added.append(value["path"])
        elif key in ("deletedFile", "deletedFolder"):
            prefix = value["path"].rstrip("/") + "/"
            gone = [p for p in tree if p == value["path"] or (key == "deletedFolder" and p.startswith(prefix))]
            if not gone:
                raise Refused(404, f"{value['path']} does not exist", "EntryNotFound")
            for path in gone:
                del tree[path]
            deleted.extend(gone)
        else:  # lfsFile and the like: preupload never asks for them
            raise Refused(400, f"unsupported commit operation {key!r} (this server takes regular files only)")
    return added, deleted


def _send(handler: BaseHTTPRequestHandler, status: int, payload: Any, *, code: str | None = None,
          send_body: bool = True) -> None:
    body = json.dumps(payload).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    if code is not None:
        handler.send_header("X-Error-Code", code)
    if status >= 400 and "error" in payload:
        handler.send_header("X-Error-Message", str(payload.get("error", "")))
    handler.end_headers()
    if send_body and handler.command != "HEAD":
        handler.wfile.write(body)
