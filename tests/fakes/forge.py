"""What every fake forge does the same way, whatever its API looks like.

Each request is recorded, meets the test's queued faults (`json_http.Faults`), has its
token checked and is routed under one lock; errors are answered in the forge's own
shape. A fake forge names its shapes, its token check and its routes, and
`FakeForge` serves its state on a free loopback port.
"""

from __future__ import annotations

import json
import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Self, TypeVar
from urllib.parse import parse_qs, urlsplit

from tests.fakes.json_http import Call, Faults, Hang, JsonServer, Result

Json = dict[str, Any]


class HTTPError(Exception):
    """An error answer: `status`, the forge's `message`, and any extra response headers."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


@dataclass
class ForgeState(ABC):
    """Everything a fake forge knows; every method is safe to call from the test thread."""

    # How this forge answers a body that is not JSON, and a request failed by a fault.
    invalid_json: ClassVar[Result]
    fault_body: ClassVar[Json]

    token: str = ""
    calls: list[Call] = field(default_factory=list)
    faults: Faults = field(default_factory=Faults)
    _next_id: int = 0
    _lock: threading.RLock = field(default_factory=threading.RLock)

    def fail_next(
        self, n: int, status: int = 502, *, match: str | None = None, processed: bool = False
    ) -> None:
        """Answer the next `n` requests (matching the regex `match` on "METHOD /path", if
        given) with `status`; with `processed` the request takes effect first."""
        self.faults.fail_next(n, status, match=match, processed=processed)

    def rate_limit_next(self, retry_after: int = 1) -> None:
        """Answer the next request with the forge's 429 and a Retry-After."""
        self.faults.rate_limit_next(retry_after)

    def calls_to(self, method: str, path: str = ".*") -> list[Call]:
        """Recorded calls with `method` whose raw path fully matches the regex `path`."""
        with self._lock:
            return [c for c in self.calls if c.method == method and re.fullmatch(path, c.path)]

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Result:
        """One request, on a server thread."""
        parts = urlsplit(target)
        query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        try:
            payload = json.loads(body) if body else None
        except ValueError:
            return self.invalid_json
        with self._lock:
            self.calls.append(Call(method, parts.path, query, payload, headers))
        fault = self.faults.take(f"{method} {parts.path}")
        if fault is not None and fault.status == 0:
            raise Hang
        if fault is not None and not fault.processed:
            return fault.status, self.fault_body, fault.headers
        try:
            self._authenticate(headers)
            with self._lock:
                result = self._route(method, parts.path, query, payload, headers)
        except HTTPError as error:
            result = error.status, self._error_body(error.message), error.headers
        if fault is not None:
            return fault.status, self.fault_body, fault.headers
        return result

    @abstractmethod
    def _authenticate(self, headers: dict[str, str]) -> None:
        """Raise `HTTPError` (401) unless `headers` carry `token` as this forge expects."""

    @abstractmethod
    def _route(
        self, method: str, path: str, query: dict[str, str], body: Any, headers: dict[str, str]
    ) -> Result:
        """The endpoint's answer; `HTTPError` for an error."""

    @abstractmethod
    def _error_body(self, message: str) -> Json:
        """An error `message` in this forge's JSON shape."""

    def _id(self) -> int:
        with self._lock:
            self._next_id += 1
            return self._next_id


S = TypeVar("S", bound=ForgeState)
F = TypeVar("F", bound="FakeForge[Any]")


class FakeForge(Generic[S]):
    """The server: `url` is the API base URL (the origin and `prefix`), `state` what it
    recorded and holds. `headers` go on every response."""

    def __init__(
        self, state: S, name: str, *, prefix: str = "", headers: dict[str, str] | None = None
    ) -> None:
        self.state = state
        self._server = JsonServer(state.handle, name, headers)
        self.url = self._server.origin + prefix

    def start(self) -> Self:
        self._server.start()
        return self

    def stop(self) -> None:
        """Stop listening and cut open connections: to a client, the forge is gone."""
        self._server.stop()


@contextmanager
def running(server: F) -> Iterator[F]:
    """`server` on its loopback port for the duration of the block."""
    server.start()
    try:
        yield server
    finally:
        server.stop()


def public(record: Json) -> Json:
    """A stored record without its private (underscore) keys, as the forge shows it."""
    return {k: v for k, v in record.items() if not k.startswith("_")}
