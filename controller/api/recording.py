"""Recording agent traffic for replay: a tee on the router's request and response streams.

For agents whose serving version opts in (`spec.observability.record.enabled`), each
sampled request through the router is kept with its response: method, path and query,
headers with secrets redacted (`Authorization`, `Cookie`, `Set-Cookie` always, plus the
manifest's `redactHeaders`), at most `maxBodyBytes` of each body, the status, the latency
and the trace id. Health checks are never recorded.

Bodies stream through untouched: the tee copies at most the cap and counts the rest, so a
huge or endless body costs bounded memory and is marked truncated. The request path only
appends one tuple (the copied bodies, references to the headers) to a pending list;
a writer thread wakes a few times a second and does the rest in batches: redaction, the
`Recorded` rows, one SQLite transaction per batch. The pending list is bounded by count
and by bytes; when the writer falls behind, records are dropped (and counted), never the
request delayed.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii as _json_string
from typing import Any

from controller.api import tracing
from controller.specs import model
from controller.store import recordings
from controller.store.recordings import Recordings, Retention

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

REDACTED = "[REDACTED]"
QUEUE_SIZE = 10_000  # records waiting for the writer, at most
QUEUE_BYTES = 64 * 1024 * 1024  # and at most this much of their bodies
_BATCH = 500
_BATCH_WINDOW_SECONDS = 0.1
_SETTINGS_CACHED = 4096

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Policy:
    """What to record of one version: its settings and the health path it must skip."""

    settings: model.RecordSettings
    health_path: str = "/healthz"


NOT_RECORDED = Policy(model.RecordSettings())

PolicyOf = Callable[[str, str, str], Policy | None]
"""(agent, environment, version) → its recording policy (a version's never changes: the
settings are part of what its hash covers), or None while it is not known yet."""


def policy_of_manifest(manifest: dict[str, Any]) -> Policy:
    """The policy a version's manifest (as stored with its revision) declares."""
    spec = manifest.get("spec") or {}
    health = (spec.get("healthCheck") or {}).get("path", "/healthz")
    return Policy(model.record_settings(spec), str(health))


class _Tee:
    """At most `cap` bytes of a stream, and how long it really was."""

    __slots__ = ("cap", "chunks", "kept", "total")

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.chunks: list[bytes] = []
        self.kept = 0
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.cap - self.kept
        if room > 0 and chunk:
            piece = chunk[:room]
            self.chunks.append(piece)
            self.kept += len(piece)

    def body(self) -> bytes:
        return b"".join(self.chunks)


class _Tap:
    """One recorded exchange as the proxy copies it: the bodies up to the cap, the status
    and the headers the client was sent."""

    __slots__ = ("arrived", "headers", "request", "response", "settings", "status")

    def __init__(self, settings: model.RecordSettings) -> None:
        self.arrived = time.time()
        self.settings = settings
        self.request = _Tee(settings.max_body_bytes)
        self.response = _Tee(settings.max_body_bytes)
        self.status = 0
        self.headers: Any = ()

    def request_body(self, piece: bytes) -> None:
        self.request.add(piece)

    def response_start(self, status: int, headers: Any) -> None:
        self.status = status
        self.headers = headers

    def response_body(self, piece: bytes) -> None:
        self.response.add(piece)


# Plain values only: what the request path leaves for the writer must not keep the scope,
# the tees or their lists alive (each a container more for the garbage collector to walk
# per request while it waits: ~3 µs of collection per request at full rate).
_Pending = tuple[
    float,  # time the request arrived
    tracing.Destination,
    str,  # trace id
    str,  # method
    str,  # path
    bytes,  # query
    Any,  # request headers as received
    bytes,  # request body (at most the cap)
    int,  # request body's full size
    int,  # status
    Any,  # response headers as the client was sent them
    bytes,  # response body (at most the cap)
    int,  # response body's full size
    float,  # latency
    bool,  # complete
    model.RecordSettings,
]


class Recorder:
    def __init__(self, recordings: Recordings, policy_of: PolicyOf) -> None:
        self.recordings = recordings
        self._policy_of = policy_of
        self._policies: dict[tuple[str, str, str], Policy] = {}
        self._pending: deque[_Pending] = deque()
        # Each counter has one writer (the request path or the writer thread), so neither
        # needs a lock; what waits is their difference.
        self._enqueued = self._enqueued_bytes = 0
        self._written = self._written_bytes = 0
        self._progress = threading.Condition()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.dropped = 0
        self._writer = threading.Thread(target=self._write, name="shipyard-recorder", daemon=True)
        self._writer.start()

    def policy(self, agent: str, environment: str, version: str) -> Policy:
        key = (agent, environment, version)
        policy = self._policies.get(key)
        if policy is None:
            found = self._policy_of(agent, environment, version)
            if found is None:
                return NOT_RECORDED
            if len(self._policies) >= _SETTINGS_CACHED:
                self._policies.clear()
            policy = self._policies[key] = found
        return policy

    def tap(self, upstream: tracing.Destination, scope: Scope) -> _Tap | None:
        """A copy for the proxy to fill if the version records this request (sampled,
        not its health check), else None."""
        policy = self.policy(upstream.agent, upstream.environment, upstream.version)
        settings = policy.settings
        if (
            not settings.enabled
            or scope["path"] == policy.health_path
            or (settings.sample_rate < 1.0 and random.random() >= settings.sample_rate)  # noqa: S311
        ):
            return None
        return _Tap(settings)

    def tapped(
        self,
        upstream: tracing.Destination,
        scope: Scope,
        tap: tracing.Tap,
        latency: float,
        complete: bool,
    ) -> None:
        """Queue the filled copy for the writer (or drop it, counted, if the queue is full)."""
        if not isinstance(tap, _Tap):
            raise TypeError(f"not this recorder's tap: {tap!r}")
        request, response = tap.request, tap.response
        self._enqueue(
            (
                tap.arrived,
                upstream,
                str(scope.get(tracing.TRACE_ID_KEY, "")),
                scope["method"],
                scope["path"],
                scope.get("query_string", b""),
                scope["headers"],
                request.body(),
                request.total,
                tap.status,
                tap.headers,
                response.body(),
                response.total,
                latency,
                complete,
                tap.settings,
            ),
            request.kept + response.kept,
        )

    async def recorded(
        self,
        upstream: tracing.Destination,
        scope: Scope,
        receive: Receive,
        send: Send,
        proxy: Callable[[Scope, Receive, Send], Awaitable[None]],
    ) -> None:
        """Run `proxy`, keeping a copy of the exchange if the version records (for callers
        that proxy through ASGI messages; the router fills a `tap` itself)."""
        tap = self.tap(upstream, scope)
        if tap is None:
            await proxy(scope, receive, send)
            return

        async def receiving() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                tap.request_body(message.get("body", b""))
            return message

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                tap.response_start(int(message["status"]), message.get("headers", ()))
            else:
                tap.response_body(message.get("body", b""))
            await send(message)

        started = time.perf_counter()
        complete = False
        try:
            await proxy(scope, receiving, sending)
            complete = True
        finally:
            self.tapped(upstream, scope, tap, time.perf_counter() - started, complete)

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until everything enqueued so far is written."""
        target = self._enqueued
        self._wake.set()
        with self._progress:
            self._progress.wait_for(lambda: self._written >= target, timeout)

    def close(self) -> None:
        """Write what is queued, then stop the writer (once)."""
        if self._writer.is_alive():
            self._stop.set()
            self._wake.set()
            self._writer.join(timeout=30)
            self.recordings.close()

    def _enqueue(self, pending: _Pending, size: int) -> None:
        if (
            self._enqueued - self._written >= QUEUE_SIZE
            or self._enqueued_bytes - self._written_bytes + size > QUEUE_BYTES
        ):
            self.dropped += 1
            if self.dropped in (1, 10, 100) or self.dropped % 1000 == 0:
                _log.warning("recorder falling behind: %d recorded requests dropped", self.dropped)
            return
        self._pending.append(pending)
        self._enqueued_bytes += size
        self._enqueued += 1

    def _write(self) -> None:
        # Woken a few times a second (or by flush and close), never per record: waking for
        # every record would take the interpreter lock from the event loop once per request.
        while True:
            self._wake.wait(_BATCH_WINDOW_SECONDS)
            self._wake.clear()
            stopping = self._stop.is_set()
            while self._pending:
                self._write_batch()
            if stopping:
                return

    def _write_batch(self) -> None:
        taken: list[_Pending] = []
        while self._pending and len(taken) < _BATCH:
            taken.append(self._pending.popleft())
        size = 0
        try:
            batch = []
            # The latest settings of each agent and environment in the batch decide its
            # retention (one `Retention` per agent, not per row).
            latest: dict[tuple[str, str], model.RecordSettings] = {}
            for pending in taken:
                batch.append(_row(pending))
                upstream = pending[1]
                latest[(upstream.agent, upstream.environment)] = pending[15]
                size += len(pending[7]) + len(pending[11])
            retention = {
                owner: Retention(settings.max_requests, settings.max_age_seconds)
                for owner, settings in latest.items()
            }
            self.recordings.add_rows(batch, retention)
        except Exception:
            # Never the bodies: they may hold personal data.
            _log.exception("could not store %d recorded requests", len(taken))
        finally:
            self._written_bytes += size
            with self._progress:
                self._written += len(taken)
                self._progress.notify_all()


def _row(pending: _Pending) -> tuple[object, ...]:
    (arrived, upstream, trace_id, method, path, query, request_headers, request_body,
     request_total, status, response_headers, response_body, response_total, latency,
     complete, settings) = pending  # fmt: skip
    redacted = settings.redacted
    return recordings.row(
        arrived,
        (upstream.agent, upstream.environment, upstream.version),
        (trace_id, method, path, bytes(query).decode("latin-1")),
        (headers_json(request_headers, redacted), request_body, request_total),
        (status, headers_json(response_headers, redacted), response_body, response_total),
        outcome=(latency, complete),
    )


def headers_json(headers: Any, redacted: frozenset[str]) -> str:
    """The JSON of the (name, value) pairs as stored (names lower case, secrets redacted):
    what `json.dumps` makes of them, written with its own string encoder (about half the
    CPU of building the tuples and dumping them, on the writer's thread for every row)."""
    pairs = []
    for raw_name, raw_value in headers:
        name = raw_name.decode("latin-1").lower()
        value = REDACTED if name in redacted else raw_value.decode("latin-1")
        pairs.append("[" + _json_string(name) + ", " + _json_string(value) + "]")
    return "[" + ", ".join(pairs) + "]"
