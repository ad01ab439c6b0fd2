"""Request traces from the router: a W3C trace per agent request, a span per request.

The router is where every agent request passes, so it is where a trace starts (or
continues, when the caller sent a `traceparent`) and where the agent learns the trace it
is part of: the request it receives carries the router span's `traceparent`, so the
agent's own spans nest under it. Each request becomes an OpenTelemetry server span that
follows the HTTP semantic conventions (`{method} {route}`, `http.request.method`,
`http.route`, `url.path`, `http.response.status_code`, `server.address`,
`user_agent.original`) plus Shipyard's own `shipyard.*` attributes, on a resource whose
`service.name` is the agent, so Jaeger, Tempo or any vendor reads them as they are.

The request path does as little as it can: it reads or makes the trace context, decides
sampling (parent-based, then by trace id ratio, as the SDK's
`ParentBased(TraceIdRatioBased)`), and at the end appends one tuple to a bounded ring.
A background thread drains the ring every `DRAIN_SECONDS`: it keeps the most recent
requests of every version (`Recent`, for `shipyard requests`, which drains first so it
never misses a finished request) and hands sampled spans to the OTLP exporter
(`span_export`) in batches. Query strings are never kept or exported: they may carry
tokens.
"""

from __future__ import annotations

import binascii
import logging
import os
import random
import re
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any, NamedTuple, Protocol, TypeVar, runtime_checkable

from controller.api import span_export
from controller.errors import ShipyardError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

KEPT_PER_VERSION = 200
VERSIONS_KEPT = 512
TRACE_ID_KEY = "shipyard.trace_id"
"""Where the scope carries the request's trace id for whatever runs inside the span."""

RING_SIZE = 8192  # finished requests waiting for the drain thread; beyond it the oldest go
DRAIN_SECONDS = 0.2
EXPORT_BATCH = 512  # as the SDK's OTEL_BSP_MAX_EXPORT_BATCH_SIZE
_DEFAULT_EXPORT_DELAY_SECONDS = 5.0  # as the SDK's OTEL_BSP_SCHEDULE_DELAY
_TRACE_ID_LIMIT = (1 << 64) - 1
_TRACEPARENT = re.compile(
    rb"^\s*([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?\s*$"
)
_ZERO_TRACE = b"0" * 32
_ZERO_SPAN = b"0" * 16
_SHAPES_KEPT = 4096
_ID_SEGMENT = re.compile(
    r"^(?:\d+|[0-9a-fA-F]{16,}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
    r"[0-9a-fA-F]{12}|[A-Za-z0-9_\-]{33,})$"
)
_ROUTE_SEGMENTS = 4

_log = logging.getLogger(__name__)


class Destination(Protocol):
    """What the router knows of the agent a request goes to (`proxy.Upstream`)."""

    @property
    def agent(self) -> str: ...

    @property
    def environment(self) -> str: ...

    @property
    def version(self) -> str: ...


D = TypeVar("D", bound=Destination)


class Tap(Protocol):
    """The copy of one recorded exchange, which the proxy fills as the request goes
    (no wrapper around `receive` and `send` on its path)."""

    def request_body(self, piece: bytes) -> None: ...

    def response_start(self, status: int, headers: Any) -> None:
        """The status and the headers as the client is sent them (stamps included)."""
        ...

    def response_body(self, piece: bytes) -> None: ...


class Inner(Protocol):
    """What runs inside a request's span around the proxying (the recorder)."""

    def tap(self, upstream: Destination, scope: Scope) -> Tap | None:
        """A copy for the proxy to fill if this request is to be recorded, else None."""
        ...

    def tapped(
        self, upstream: Destination, scope: Scope, tap: Tap, latency: float, complete: bool
    ) -> None:
        """Keep the filled copy (queued: written off the request path)."""
        ...

    async def recorded(
        self,
        upstream: Destination,
        scope: Scope,
        receive: Receive,
        send: Send,
        proxy: Callable[[Scope, Receive, Send], Awaitable[None]],
    ) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class Flushable(Protocol):
    def flush(self) -> None: ...


class RequestRecord(NamedTuple):
    """One request through the router, as `shipyard requests` shows it."""

    time: float  # when it arrived, seconds since the epoch
    agent: str
    environment: str
    version: str
    method: str
    path: str  # without the query string
    status: int
    latency: float  # seconds until the response ended
    trace_id: str
    span_id: str
    request_bytes: int | None
    response_bytes: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "agent": self.agent,
            "environment": self.environment,
            "version": self.version,
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "latencySeconds": self.latency,
            "traceId": self.trace_id,
            "spanId": self.span_id,
            "requestBytes": self.request_bytes,
            "responseBytes": self.response_bytes,
        }


class Recent:
    """The newest requests of every (agent, environment, version), bounded in total.

    Written by the drain thread, read by the API: `before_read` (the drain) runs before
    each read, so a request that has finished is always listed. What is kept may be a
    compact tuple that `to_record` turns into a `RequestRecord` when read: reads are rare,
    requests are not.
    """

    def __init__(self, per_version: int = KEPT_PER_VERSION, versions: int = VERSIONS_KEPT) -> None:
        self._per_version = per_version
        self._versions = versions
        self._records: OrderedDict[tuple[str, str, str], deque[Any]] = OrderedDict()
        self._lock = threading.Lock()
        self.before_read: Callable[[], None] | None = None
        self.to_record: Callable[[tuple[str, str, str], Any], RequestRecord] = _as_is

    def add(self, record: RequestRecord) -> None:
        self.keep([((record.agent, record.environment, record.version), record)])

    def keep(self, items: Iterable[tuple[tuple[str, str, str], Any]]) -> None:
        with self._lock:
            for key, item in items:
                kept = self._records.get(key)
                if kept is None:
                    kept = self._records[key] = deque(maxlen=self._per_version)
                    while len(self._records) > self._versions:
                        self._records.popitem(last=False)
                kept.append(item)

    def of(
        self, agent: str, environment: str, version: str | None = None, limit: int | None = None
    ) -> list[RequestRecord]:
        """The agent's requests in the environment (one version's, if given), oldest first."""
        if self.before_read is not None:
            self.before_read()
        with self._lock:
            found = [
                (key, item)
                for key, kept in self._records.items()
                if key[0] == agent
                and key[1] == environment
                and (version is None or key[2] == version)
                for item in kept
            ]
        records = [self.to_record(key, item) for key, item in found]
        records.sort(key=lambda record: record.time)
        return records[-limit:] if limit else records


def _as_is(key: tuple[str, str, str], record: Any) -> RequestRecord:
    assert isinstance(record, RequestRecord)
    return record


def route_of(path: str) -> str:
    """A low-cardinality stand-in for the route an agent matched (agents do not tell the
    router their routes): ids (numbers, UUIDs, long hex or tokens) become `{id}`, and only
    the first few segments count."""
    segments = path.split("?", 1)[0].split("/")[1:]
    shown = ["{id}" if _ID_SEGMENT.match(segment) else segment for segment in segments]
    if len(shown) > _ROUTE_SEGMENTS:
        shown = [*shown[:_ROUTE_SEGMENTS], "*"]
    return "/" + "/".join(shown)


def otlp_traces_url(endpoint: str) -> str:
    """`--otlp-endpoint` as OTEL_EXPORTER_OTLP_ENDPOINT means it: a base URL, to which the
    traces path is added (a URL already ending in `/v1/traces` is taken as it is)."""
    if not re.match(r"^https?://[^/\s]+", endpoint):
        raise ShipyardError(
            f"--otlp-endpoint {endpoint!r} is not an http(s) URL such as http://127.0.0.1:4318"
        )
    base = endpoint.rstrip("/")
    return base if base.endswith("/v1/traces") else base + "/v1/traces"


def sample_ratio_from_environment() -> float:
    """The SDK's standard sampler variables, for when `--trace-sample-ratio` is not given:
    `OTEL_TRACES_SAMPLER=parentbased_traceidratio` (or `traceidratio`) with
    `OTEL_TRACES_SAMPLER_ARG`; `parentbased_always_off` samples no new trace; else 1."""
    sampler = os.environ.get("OTEL_TRACES_SAMPLER", "").strip().lower()
    if sampler in ("parentbased_traceidratio", "traceidratio"):
        try:
            return check_sample_ratio(float(os.environ.get("OTEL_TRACES_SAMPLER_ARG", "1")))
        except (ValueError, ShipyardError):
            _log.warning("OTEL_TRACES_SAMPLER_ARG is not a ratio from 0 to 1: sampling every trace")
    if sampler in ("parentbased_always_off", "always_off"):
        return 0.0
    return 1.0


def check_sample_ratio(ratio: float) -> float:
    if not 0.0 <= ratio <= 1.0:
        raise ShipyardError(f"a trace sample ratio is from 0 to 1, not {ratio}")
    return ratio


class Exchange:
    """One proxied request as the router sees it: the trace context it goes out with, and
    what came of it. The router fills it as the request goes (no wrapper around `send`)."""

    __slots__ = (
        "error",
        "latency",
        "parent",
        "received",
        "sampled",
        "sent",
        "start_ns",
        "status",
        "tap",
        "traceparent",
    )

    def __init__(self) -> None:
        self.status = 500  # what the server answers when the proxy raises before responding
        self.sent = 0  # response body bytes
        self.received: int | None = None  # the request body's Content-Length, if any
        self.error: str | None = None  # the exception's type, when the router failed
        self.latency = 0.0
        self.traceparent: bytes | None = None  # what the agent is sent, when traced
        self.parent: bytes | None = None  # the caller's span id (hex), when continued
        self.sampled = False
        self.start_ns = 0
        self.tap: Tap | None = None  # the recorder's copy, when the request is recorded


# What a span's shape needs of the request: Host, User-Agent, client address, scheme.
_ShapeParts = tuple[bytes, bytes, str, str]
# A finished request waiting in the ring: the upstream, method, path, status, response and
# request bytes, latency, traceparent, parent span id, start, error, and (when its span is
# exported) its shape parts.
_Finished = tuple[
    Destination,
    str,
    str,
    int,
    int,
    int | None,
    float,
    bytes,
    bytes | None,
    int,
    str | None,
    _ShapeParts | None,
]
# start ns, method, path, status, latency, traceparent, request bytes, response bytes
_Kept = tuple[int, str, str, int, float, bytes, int | None, int]
_ShapeKey = tuple[str, str, str, str, str, bytes, bytes, str, str, str | None]


class Tracing:
    """Spans for agent requests: exported over OTLP/HTTP if configured, kept in `recent`."""

    def __init__(
        self,
        otlp_endpoint: str | None = None,
        *,
        commit_of: Callable[[str, str, str], str | None] | None = None,
        recent: Recent | None = None,
        inner: Inner | None = None,
        sample_ratio: float | None = None,
    ) -> None:
        self.recent = recent or Recent()
        self.recent.before_read = self.drain
        self.recent.to_record = _record
        self.inner = inner
        self.sample_ratio = check_sample_ratio(
            sample_ratio_from_environment() if sample_ratio is None else sample_ratio
        )
        # As TraceIdRatioBased: a new trace is sampled when its id's low 64 bits are below.
        self._bound = round(self.sample_ratio * (_TRACE_ID_LIMIT + 1))
        self._commit_of = commit_of
        self._ring: deque[_Finished] = deque(maxlen=RING_SIZE)
        self.dropped = 0  # finished requests the ring lost before the drain took them
        self._drain_lock = threading.Lock()
        self._shapes: dict[_ShapeKey, span_export.Shape] = {}
        self._exporter: span_export.Exporter | None = None
        self._encoder = span_export.Encoder()
        self._batch = span_export.Batch()
        self._batch_since = time.monotonic()
        self._export_delay = _export_delay()
        if otlp_endpoint is not None:
            self._exporter = span_export.Exporter(otlp_traces_url(otlp_endpoint))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="shipyard-spans", daemon=True)
        self._thread.start()

    @property
    def exporting(self) -> bool:
        return self._exporter is not None

    @property
    def spans_dropped(self) -> int:
        """Spans that never reached the collector (refused, unreachable, queue full)."""
        return self._exporter.dropped if self._exporter is not None else 0

    def start(self, scope: Scope, exchange: Exchange) -> None:
        """Give the request its trace context: the caller's trace continued, or a new one."""
        exchange.start_ns = time.time_ns()
        for name, value in scope["headers"]:
            if name == b"traceparent":
                if (context := _parent_context(value)) is not None:
                    trace_hex, exchange.parent, sampled = context
                    exchange.sampled = sampled
                    exchange.traceparent = b"00-%s-%016x-%s" % (
                        trace_hex,
                        random.getrandbits(64) or 1,
                        b"01" if sampled else b"00",
                    )
                    if self.inner is not None:
                        scope[TRACE_ID_KEY] = trace_hex.decode()
                    return
                break
        ids = random.getrandbits(192)
        trace_id = ids >> 64 or 1
        sampled = exchange.sampled = (trace_id & _TRACE_ID_LIMIT) < self._bound
        traceparent = exchange.traceparent = b"00-%032x-%016x-%s" % (
            trace_id,
            ids & _TRACE_ID_LIMIT or 1,
            b"01" if sampled else b"00",
        )
        if self.inner is not None:
            scope[TRACE_ID_KEY] = traceparent[3:35].decode()

    def finish(self, upstream: Destination, scope: Scope, exchange: Exchange) -> None:
        """Note the finished request; everything else happens on the drain thread.

        Only plain values go into the ring, not the scope or the exchange: those die here,
        as they do untraced, instead of living on as containers for the garbage collector
        to walk."""
        ring = self._ring
        if len(ring) == RING_SIZE:
            self.dropped += 1
        ring.append(
            (
                upstream,
                scope["method"],
                scope["path"],
                exchange.status,
                exchange.sent,
                exchange.received,
                exchange.latency,
                exchange.traceparent or b"",
                exchange.parent,
                exchange.start_ns,
                exchange.error,
                _shape_parts(scope) if exchange.sampled and self._exporter else None,
            )
        )

    async def traced(
        self,
        upstream: D,
        scope: Scope,
        receive: Receive,
        send: Send,
        proxy: Callable[[D, Scope, Receive, Send], Awaitable[None]],
    ) -> None:
        """Run `proxy` for one request inside a span, the agent told of the trace (for
        callers outside the router, which calls `start` and `finish` itself)."""
        exchange = Exchange()
        self.start(scope, exchange)
        assert exchange.traceparent is not None
        scope["headers"] = [(n, v) for n, v in scope["headers"] if n != b"traceparent"]
        scope["headers"].append((b"traceparent", exchange.traceparent))
        exchange.received = _content_length(scope["headers"])

        async def counting(message: Message) -> None:
            if message["type"] == "http.response.start":
                exchange.status = int(message["status"])
            else:
                exchange.sent += len(message.get("body", b""))
            await send(message)

        started = time.perf_counter()
        try:
            if self.inner is None:
                await proxy(upstream, scope, receive, counting)
            else:
                await self.inner.recorded(
                    upstream, scope, receive, counting, lambda s, r, w: proxy(upstream, s, r, w)
                )
        except BaseException as exc:
            exchange.error = type(exc).__qualname__
            raise
        finally:
            exchange.latency = time.perf_counter() - started
            self.finish(upstream, scope, exchange)

    def drain(self) -> None:
        """Move finished requests into `recent` and sampled spans towards the exporter."""
        with self._drain_lock:
            ring = self._ring
            kept: list[tuple[tuple[str, str, str], _Kept]] = []
            commits: dict[tuple[str, str, str], str | None] = {}
            while ring:
                finished = ring.popleft()
                upstream = finished[0]
                key = (upstream.agent, upstream.environment, upstream.version)
                (_, method, path, status, sent, received, latency, traceparent, _, start_ns,
                 _, parts) = finished  # fmt: skip
                kept.append(
                    (key, (start_ns, method, path, status, latency, traceparent, received, sent))
                )
                if parts is not None:
                    span = self._span(finished, parts, commits)
                    self._batch.add(upstream.agent, upstream.environment, span)
                    if self._batch.count >= EXPORT_BATCH:
                        self._flush_batch()
            if kept:
                self.recent.keep(kept)
            if self._batch.count and time.monotonic() - self._batch_since >= self._export_delay:
                self._flush_batch()

    def flush(self) -> None:
        """Process every finished request now: listed, exported, recorded (for benchmarks
        and tests that must count the deferred work; serving never waits for it)."""
        self.drain()
        if self._exporter is not None:
            with self._drain_lock:
                self._flush_batch()
            self._exporter.flush()
        if isinstance(self.inner, Flushable):
            self.inner.flush()

    def shutdown(self) -> None:
        """Export what is queued (bounded by the exporter's timeout), write what the inner
        layer queued, and stop their threads."""
        self._stop.set()
        self._thread.join(timeout=5)
        self.drain()
        if self._exporter is not None:
            with self._drain_lock:
                self._flush_batch()
            self._exporter.shutdown()
        if self.inner is not None:
            self.inner.close()

    def _run(self) -> None:
        while not self._stop.wait(DRAIN_SECONDS):
            try:
                self.drain()
            except Exception:  # a bad record must not end tracing
                _log.exception("could not process finished requests")

    def _flush_batch(self) -> None:
        if self._batch.count and self._exporter is not None:
            self._exporter.submit(self._encoder.request(self._batch), self._batch.count)
        self._batch = span_export.Batch()
        self._batch_since = time.monotonic()

    def _span(
        self,
        finished: _Finished,
        parts: _ShapeParts,
        commits: dict[tuple[str, str, str], str | None],
    ) -> bytes:
        """The span's encoding (`span_export.Encoder.encode`)."""
        (upstream, method, path, status, sent, received, latency, traceparent, parent, start_ns,
         error, _) = finished  # fmt: skip
        agent, environment, version = upstream.agent, upstream.environment, upstream.version
        commit: str | None = None
        if self._commit_of is not None:
            key = (agent, environment, version)
            if key in commits:
                commit = commits[key]
            else:
                commit = commits[key] = self._commit_of(*key)
        shape_key = (agent, environment, version, method, path, *parts, commit)
        shape = self._shapes.get(shape_key) or self._shape(shape_key)
        return self._encoder.encode(
            (
                binascii.unhexlify(traceparent[3:35]),
                binascii.unhexlify(traceparent[36:52]),
                binascii.unhexlify(parent) if parent else None,
            ),
            (start_ns, start_ns + int(latency * 1e9)),
            shape,
            path,
            (status, sent, received, error),
        )

    def _shape(self, key: _ShapeKey) -> span_export.Shape:
        agent, environment, version, method, path, host, user_agent, client, scheme, commit = key
        route = route_of(path)
        attributes: list[tuple[str, str | int]] = [
            ("http.request.method", method),
            ("http.route", route),
            ("url.scheme", scheme),
            ("shipyard.agent", agent),
            ("shipyard.environment", environment),
            ("shipyard.version", version),
        ]
        if host:
            attributes.append(("server.address", host.decode("latin-1").split(":", 1)[0]))
        if user_agent:
            attributes.append(("user_agent.original", user_agent.decode("latin-1")))
        if client:
            attributes.append(("client.address", client))
        if commit:
            attributes.append(("shipyard.commit", commit))
        if len(self._shapes) >= _SHAPES_KEPT:
            self._shapes.clear()
        shape = self._shapes[key] = span_export.Shape(f"{method} {route}", tuple(attributes))
        return shape


def _shape_parts(scope: Scope) -> _ShapeParts:
    host = user_agent = b""
    for name, value in scope["headers"]:
        if name == b"host":
            host = value
        elif name == b"user-agent":
            user_agent = value
    client = scope.get("client")
    return host, user_agent, str(client[0]) if client else "", str(scope.get("scheme", "http"))


def _record(key: tuple[str, str, str], kept: Any) -> RequestRecord:
    if isinstance(kept, RequestRecord):
        return kept
    start_ns, method, path, status, latency, traceparent, received, sent = kept
    return RequestRecord(
        start_ns / 1e9,
        *key,
        method,
        path,
        status,
        latency,
        traceparent[3:35].decode(),
        traceparent[36:52].decode(),
        received,
        sent,
    )


def _parent_context(header: bytes) -> tuple[bytes, bytes, bool] | None:
    """(trace id, parent span id, sampled) of a valid W3C `traceparent`, else None (a new
    trace starts, as the specification says for a header that does not parse)."""
    matched = _TRACEPARENT.match(header)
    if matched is None:
        return None
    version, trace_hex, parent_hex, flags, rest = matched.groups()
    if version == b"ff" or (version == b"00" and rest):
        return None
    if trace_hex == _ZERO_TRACE or parent_hex == _ZERO_SPAN:
        return None
    return trace_hex, parent_hex, bool(int(flags, 16) & 1)


def _export_delay() -> float:
    """Seconds between exports: `OTEL_BSP_SCHEDULE_DELAY` (ms) as the SDK reads it."""
    value = os.environ.get("OTEL_BSP_SCHEDULE_DELAY")
    if value:
        try:
            return max(0.0, float(value) / 1000)
        except ValueError:
            _log.warning("OTEL_BSP_SCHEDULE_DELAY=%r is not milliseconds: using 5000", value)
    return _DEFAULT_EXPORT_DELAY_SECONDS


def _content_length(headers: Iterable[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name == b"content-length" and value.isdigit():
            return int(value)
    return None
