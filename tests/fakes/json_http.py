"""What every fake forge needs besides its endpoints: a loopback JSON server and faults.

A fake forge is a `handle(method, target, headers, body) -> (status, payload, headers)`
function; `JsonServer` serves it over real HTTP/1.1 with keep-alive, and `Faults` lets a
test make the next matching requests fail the ways real forges fail: a 5xx (before or
after the request took effect, which is how a lost response looks to a client), a 429
with Retry-After, or no answer at all until the server stops.
"""

from __future__ import annotations

import json
import re
import socket
import threading
from collections import deque
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Result = tuple[int, Any, dict[str, str]]
Handle = Callable[[str, str, dict[str, str], bytes], Result]


@dataclass(frozen=True)
class Call:
    """One request as it arrived (`path` raw, still percent-encoded)."""

    method: str
    path: str
    query: dict[str, str]
    json: Any
    headers: dict[str, str]  # lower-cased names

    @property
    def line(self) -> str:
        return f"{self.method} {self.path}"


@dataclass
class Fault:
    """How one request is answered instead of normally (`status` 0: never answered)."""

    status: int
    headers: dict[str, str]
    match: re.Pattern[str] | None
    processed: bool


@dataclass
class Faults:
    """Queued faults, each taken by the first request whose "METHOD /path" it matches."""

    _queue: deque[Fault] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_next(
        self, n: int, status: int = 502, *, match: str | None = None, processed: bool = False
    ) -> None:
        """Answer the next `n` requests (matching the regex `match`, if given) with
        `status`; with `processed` the request takes effect first."""
        pattern = re.compile(match) if match else None
        with self._lock:
            self._queue.extend(Fault(status, {}, pattern, processed) for _ in range(n))

    def rate_limit_next(self, retry_after: int = 1, *, match: str | None = None) -> None:
        """Answer the next request with a 429 and a Retry-After of that many seconds."""
        pattern = re.compile(match) if match else None
        with self._lock:
            self._queue.append(Fault(429, {"Retry-After": str(retry_after)}, pattern, False))

    def hang_next(self, n: int, *, match: str | None = None) -> None:
        """Read the next `n` requests and never answer them (until the server stops)."""
        pattern = re.compile(match) if match else None
        with self._lock:
            self._queue.extend(Fault(0, {}, pattern, False) for _ in range(n))

    def take(self, line: str) -> Fault | None:
        with self._lock:
            for fault in self._queue:
                if fault.match is None or fault.match.fullmatch(line):
                    self._queue.remove(fault)
                    return fault
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, handle: Handle, headers: dict[str, str]) -> None:
        super().__init__(("127.0.0.1", 0), _RequestHandler)
        self.handle_call = handle
        self.headers = headers
        self.stopping = threading.Event()
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()


class Hang(Exception):
    """Raised by a `handle` to leave the request unanswered until the server stops."""


class _RequestHandler(BaseHTTPRequestHandler):
    # Without it every response waits ~40 ms for a delayed ACK (Nagle).
    disable_nagle_algorithm = True
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        with suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        try:
            status, payload, extra = self.server.handle_call(self.command, self.path, headers, body)
        except Hang:
            self.server.stopping.wait()
            self.close_connection = True
            return
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in {**self.server.headers, **extra}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve


class JsonServer:
    """`handle` served on a free loopback port; `origin` is `http://127.0.0.1:PORT`.
    `headers` go on every response (a forge's own, say)."""

    def __init__(self, handle: Handle, name: str, headers: dict[str, str] | None = None) -> None:
        self._server = _Server(handle, headers or {})
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name=name,
            daemon=True,
        )
        self.origin = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._running = False

    def start(self) -> None:
        self._thread.start()
        self._running = True

    def stop(self) -> None:
        """Stop listening, release hung requests and cut open connections: to a client,
        the forge is gone."""
        if not self._running:
            return
        self._running = False
        self._server.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        with self._server.connections_lock:
            connections = list(self._server.connections)
        for connection in connections:
            with suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
            connection.close()
        self._thread.join(timeout=5)
