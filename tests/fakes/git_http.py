"""A git remote over smart HTTP that requires basic auth: real `git http-backend` on loopback.

Each request is checked for `Authorization: Basic` with the expected user and password
(401 with a `WWW-Authenticate` challenge otherwise, as real forges answer) and then
handed to git's own CGI program, so clients speak the real protocol. `probe` runs while
the client waits for the answer, which is when its processes can be inspected; what it
returns is collected in `seen`.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit


def _backend() -> str:
    core = subprocess.run(
        ["git", "--exec-path"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return str(Path(core) / "git-http-backend")


class GitHttpServer:
    def __init__(self, root: Path, username: str, password: str) -> None:
        self.root = root
        self.expected = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
        self.authorized = 0
        self.refused = 0
        self.presented: list[str] = []  # every Authorization header received, right or wrong
        self.probe: Callable[[], list[str]] | None = None
        self.seen: list[str] = []
        self._lock = threading.Lock()
        self._backend = _backend()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.port = self._server.server_address[1]

    def url(self, repository: str) -> str:
        return f"http://127.0.0.1:{self.port}/{repository}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True

            def do_GET(self) -> None:
                self._serve()

            def do_POST(self) -> None:
                self._serve()

            def _serve(self) -> None:
                if self.headers.get("authorization") is not None:
                    with fake._lock:
                        fake.presented.append(self.headers["authorization"])
                if self.headers.get("authorization") != fake.expected:
                    with fake._lock:
                        fake.refused += 1
                    self.send_response(401)
                    self.send_header("www-authenticate", 'Basic realm="git"')
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                with fake._lock:
                    fake.authorized += 1
                if fake.probe is not None:
                    found = fake.probe()
                    with fake._lock:
                        fake.seen.extend(found)
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                environment = {
                    "GIT_PROJECT_ROOT": str(fake.root),
                    "GIT_HTTP_EXPORT_ALL": "1",
                    "PATH_INFO": parts.path,
                    "QUERY_STRING": parts.query,
                    "REQUEST_METHOD": self.command,
                    "CONTENT_TYPE": self.headers.get("content-type", ""),
                    "CONTENT_LENGTH": str(len(body)),
                    "REMOTE_USER": "tester",
                    "PATH": "/usr/bin:/bin",
                }
                if self.headers.get("git-protocol"):
                    environment["GIT_PROTOCOL"] = self.headers["git-protocol"]
                result = subprocess.run(
                    [fake._backend], input=body, env=environment, capture_output=True, check=False
                )
                head, _, payload = result.stdout.partition(b"\r\n\r\n")
                status = 200
                headers: list[tuple[str, str]] = []
                for line in head.decode("latin-1").split("\r\n"):
                    name, _, value = line.partition(":")
                    if name.lower() == "status":
                        status = int(value.split()[0])
                    elif name:
                        headers.append((name, value.strip()))
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:
                return

        return Handler

    @contextmanager
    def running(self) -> Iterator[GitHttpServer]:
        thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()
            thread.join(timeout=5)


class RedirectServer:
    """Answers every request with a redirect to the same path on another server."""

    def __init__(self, target: str) -> None:
        self.target = target.rstrip("/")
        self.requests = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake.requests += 1
                self.send_response(302)
                self.send_header("location", fake.target + self.path)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]

    def url(self, repository: str) -> str:
        return f"http://127.0.0.1:{self.port}/{repository}"

    @contextmanager
    def running(self) -> Iterator[RedirectServer]:
        thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()
            thread.join(timeout=5)


def available() -> bool:
    return shutil.which("git") is not None and Path(_backend()).exists()
