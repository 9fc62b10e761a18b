"""A tiny stand-in for the Hugging Face Hub, for tests (loopback only): downloads here, uploads in
tests/helpers/hubupload.py (``create_repo``, ``upload_folder``, ``repo_info``).

It answers what ``huggingface_hub`` 2.x ``hf_hub_download`` actually sends:

* ``HEAD /{owner}/{name}/resolve/{revision}/{path}`` -> 200 with ``X-Repo-Commit`` (required),
  ``ETag`` (required; the git blob sha1 for regular files), ``Content-Length``, and for LFS-style
  files (weights) ``X-Linked-Etag`` (the sha256, which names the cache blob) and ``X-Linked-Size``;
* ``GET`` of the same URL -> the bytes with ``Content-Length``;
* 404 with ``X-Error-Code: RepoNotFound`` / ``RevisionNotFound`` / ``EntryNotFound`` (the last one also
  carries ``X-Repo-Commit`` so the client can cache the file's absence).

No redirects (the real Hub redirects LFS files to a CDN; the client reads the same headers either
way). Every request is recorded (``requests``, ``count()``) so a test can assert the offline path made
none. Use as a context manager; the server stops (and its port closes) on exit.

``HubServer()`` with no files is an empty Hub that repositories can be created in and uploaded to.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

from tests.helpers.hubupload import UploadMixin, git_blob_sha1

LFS_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin", ".ckpt")
__all__ = ["LFS_SUFFIXES", "HubServer", "git_blob_sha1", "hub_server"]


class HubServer(UploadMixin):
    """Serve ``files[(repo_id, commit, path)] = bytes``; ``branches[(repo_id, "main")] = commit``.

    Uploads add files and commits (tests/helpers/hubupload.py; ``tokens``: the accepted write tokens, default any).
    """

    def __init__(
        self,
        files: Mapping[tuple[str, str, str], bytes] | None = None,
        branches: Mapping[tuple[str, str], str] | None = None,
        *,
        tokens: Iterable[str] | None = None,
    ) -> None:
        self.files = dict(files or {})
        self.branches = dict(branches or {})
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._init_uploads(tokens)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> HubServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_HEAD(self) -> None:  # noqa: N802 (http.server naming)
                hub._answer(self, send_body=False)

            def do_GET(self) -> None:  # noqa: N802
                hub._answer(self, send_body=True)

            def do_POST(self) -> None:  # noqa: N802
                hub._post(self)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="hubserver", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    @property
    def port(self) -> int:
        assert self._server is not None, "server not started"
        return int(self._server.server_address[1])

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ------------------------------------------------------------------ bookkeeping
    def count(self, method: str | None = None) -> int:
        with self._lock:
            return sum(1 for m, _ in self.requests if method is None or m == method)

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()

    # ------------------------------------------------------------------ protocol
    def _answer(self, handler: BaseHTTPRequestHandler, *, send_body: bool) -> None:
        with self._lock:
            self.requests.append((handler.command, handler.path))
        raw_path = urlsplit(handler.path).path
        if raw_path.startswith("/api/"):
            return self._api_get(handler, send_body=send_body)
        parts = raw_path.lstrip("/").split("/")
        # /{owner}/{name}/resolve/{revision}/{path...}
        if len(parts) < 5 or parts[2] != "resolve":
            return self._error(handler, 404, "RepoNotFound", "not a resolve URL")
        repo_id = f"{unquote(parts[0])}/{unquote(parts[1])}"
        revision = unquote(parts[3])
        filename = unquote("/".join(parts[4:]))

        with self._lock:  # uploads add files and move branches meanwhile
            repo_commits = {c for (r, c, _) in self.files if r == repo_id}
            commit = self.branches.get((repo_id, revision), revision)
            data = self.files.get((repo_id, commit, filename))
        if not repo_commits:
            return self._error(handler, 404, "RepoNotFound", f"Repository {repo_id} not found")
        if commit not in repo_commits:
            return self._error(handler, 404, "RevisionNotFound", f"Invalid rev id: {revision}")
        if data is None:
            return self._error(handler, 404, "EntryNotFound", f"{filename} does not exist", commit=commit)

        handler.send_response(200)
        handler.send_header("Content-Type", "application/octet-stream")
        handler.send_header("Content-Length", str(len(data)))
        handler.send_header("X-Repo-Commit", commit)
        handler.send_header("ETag", f'"{git_blob_sha1(data)}"')
        if filename.lower().endswith(LFS_SUFFIXES):
            handler.send_header("X-Linked-Etag", f'"{hashlib.sha256(data).hexdigest()}"')
            handler.send_header("X-Linked-Size", str(len(data)))
        handler.end_headers()
        if send_body:
            handler.wfile.write(data)

    @staticmethod
    def _error(
        handler: BaseHTTPRequestHandler, status: int, code: str, message: str, *, commit: str | None = None
    ) -> None:
        body = f'{{"error": "{message}"}}'.encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.send_header("X-Error-Code", code)
        handler.send_header("X-Error-Message", message)
        if commit is not None:
            handler.send_header("X-Repo-Commit", commit)
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(body)


@contextmanager
def hub_server(
    files: Mapping[tuple[str, str, str], bytes] | None = None,
    branches: Mapping[tuple[str, str], str] | None = None,
    *,
    tokens: Iterable[str] | None = None,
) -> Iterator[HubServer]:
    with HubServer(files, branches, tokens=tokens) as server:
        yield server
