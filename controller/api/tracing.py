"""Request traces from the router: a W3C trace per agent request, a span per request.

The router is where every agent request passes, so it is where a trace starts (or
continues, when the caller sent a `traceparent`) and where the agent learns the trace it
is part of: the request it receives carries the router span's `traceparent`, so the
agent's own spans nest under it. Each request becomes an OpenTelemetry server span that
follows the HTTP semantic conventions (`{method} {route}`, `http.request.method`,
`http.route`, `url.path`, `http.response.status_code`, `server.address`,
`user_agent.original`) plus Shipyard's own `shipyard.*` attributes, on a resource whose
`service.name` is the agent, so Jaeger, Tempo or any vendor reads them as they are.

Spans go to an OTLP/HTTP collector when one is configured, batched on the SDK's
background thread: the request path only queues them. Whether or not a collector is
configured, the most recent requests of every version are kept in memory (`Recent`) for
`shipyard requests`. Query strings are never kept or exported: they may carry tokens.
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.propagators.textmap import Getter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from controller.errors import ShipyardError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

KEPT_PER_VERSION = 200
VERSIONS_KEPT = 512
TRACE_ID_KEY = "shipyard.trace_id"
"""Where the scope carries the request's trace id for whatever runs inside the span."""

_SCOPE_NAME = "shipyard.router"
_EXPORT_TIMEOUT_SECONDS = 5.0
_PROPAGATOR = TraceContextTextMapPropagator()
_ID_SEGMENT = re.compile(
    r"^(?:\d+|[0-9a-fA-F]{16,}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
    r"[0-9a-fA-F]{12}|[A-Za-z0-9_\-]{33,})$"
)
_ROUTE_SEGMENTS = 4


class Destination(Protocol):
    """What the router knows of the agent a request goes to (`proxy.Upstream`)."""

    @property
    def agent(self) -> str: ...

    @property
    def environment(self) -> str: ...

    @property
    def version(self) -> str: ...


D = TypeVar("D", bound=Destination)


class Inner(Protocol):
    """What runs inside a request's span around the proxying (the recorder)."""

    async def recorded(
        self,
        upstream: Destination,
        scope: Scope,
        receive: Receive,
        send: Send,
        proxy: Callable[[Scope, Receive, Send], Awaitable[None]],
    ) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class RequestRecord:
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
    """The newest requests of every (agent, environment, version), bounded in total."""

    def __init__(self, per_version: int = KEPT_PER_VERSION, versions: int = VERSIONS_KEPT) -> None:
        self._per_version = per_version
        self._versions = versions
        self._records: OrderedDict[tuple[str, str, str], deque[RequestRecord]] = OrderedDict()

    def add(self, record: RequestRecord) -> None:
        key = (record.agent, record.environment, record.version)
        kept = self._records.get(key)
        if kept is None:
            kept = self._records[key] = deque(maxlen=self._per_version)
            while len(self._records) > self._versions:
                self._records.popitem(last=False)
        kept.append(record)

    def of(
        self, agent: str, environment: str, version: str | None = None, limit: int | None = None
    ) -> list[RequestRecord]:
        """The agent's requests in the environment (one version's, if given), oldest first."""
        found = [
            record
            for (name, env, ver), kept in self._records.items()
            if name == agent and env == environment and (version is None or ver == version)
            for record in kept
        ]
        found.sort(key=lambda record: record.time)
        return found[-limit:] if limit else found


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


class _Headers(Getter[list[tuple[bytes, bytes]]]):
    """The W3C propagator's view of ASGI headers (lower-case byte pairs)."""

    def get(self, carrier: list[tuple[bytes, bytes]], key: str) -> list[str] | None:
        wanted = key.encode("latin-1")
        values = [value.decode("latin-1") for name, value in carrier if name == wanted]
        return values or None

    def keys(self, carrier: list[tuple[bytes, bytes]]) -> list[str]:
        return [name.decode("latin-1") for name, _ in carrier]


_GETTER = _Headers()


class Tracing:
    """Spans for agent requests: exported over OTLP/HTTP if configured, kept in `recent`."""

    def __init__(
        self,
        otlp_endpoint: str | None = None,
        *,
        commit_of: Callable[[str, str, str], str | None] | None = None,
        recent: Recent | None = None,
        inner: Inner | None = None,
    ) -> None:
        self.recent = recent or Recent()
        self.inner = inner
        self._commit_of = commit_of
        self._tracers: dict[tuple[str, str], trace.Tracer] = {}
        self._processor: BatchSpanProcessor | None = None
        if otlp_endpoint is not None:
            # One exporter and one background thread for every agent's provider: the OTLP
            # encoder groups the spans by their resource (their agent) in each batch.
            exporter = OTLPSpanExporter(
                endpoint=otlp_traces_url(otlp_endpoint), timeout=_EXPORT_TIMEOUT_SECONDS
            )
            self._processor = BatchSpanProcessor(exporter)

    @property
    def exporting(self) -> bool:
        return self._processor is not None

    async def traced(
        self,
        upstream: D,
        scope: Scope,
        receive: Receive,
        send: Send,
        proxy: Callable[[D, Scope, Receive, Send], Awaitable[None]],
    ) -> None:
        """Run `proxy` for one request inside a server span, the agent told of the trace."""
        arrived = time.time_ns()
        started = time.perf_counter()
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        method = str(scope["method"])
        path = str(scope["path"])
        route = route_of(path)
        parent = _PROPAGATOR.extract(headers, getter=_GETTER)
        span = self._tracer(upstream.agent, upstream.environment).start_span(
            f"{method} {route}",
            context=parent,
            kind=SpanKind.SERVER,
            start_time=arrived,
            attributes=self._attributes(upstream, scope, route),
        )
        context = span.get_span_context()
        trace_id = format(context.trace_id, "032x")
        span_id = format(context.span_id, "016x")
        traceparent = f"00-{trace_id}-{span_id}-{int(context.trace_flags):02x}".encode()
        scope["headers"] = [(n, v) for n, v in headers if n != b"traceparent"]
        scope["headers"].append((b"traceparent", traceparent))
        scope[TRACE_ID_KEY] = trace_id
        status = 500  # what the server answers if the proxy raises before responding
        sent = 0

        async def counting(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = int(message["status"])
            else:
                sent += len(message.get("body", b""))
            await send(message)

        error: str | None = None
        try:
            if self.inner is None:
                await proxy(upstream, scope, receive, counting)
            else:
                await self.inner.recorded(
                    upstream, scope, receive, counting, lambda s, r, w: proxy(upstream, s, r, w)
                )
        except BaseException as exc:
            error = type(exc).__qualname__
            raise
        finally:
            latency = time.perf_counter() - started
            span.set_attribute("http.response.status_code", status)
            span.set_attribute("http.response.body.size", sent)
            if error is not None or status >= 500:
                span.set_attribute("error.type", error or str(status))
                span.set_status(Status(StatusCode.ERROR))
            span.end(end_time=arrived + int(latency * 1e9))
            self.recent.add(
                RequestRecord(
                    arrived / 1e9,
                    upstream.agent,
                    upstream.environment,
                    upstream.version,
                    method,
                    path,
                    status,
                    latency,
                    trace_id,
                    span_id,
                    _content_length(headers),
                    sent,
                )
            )

    def shutdown(self) -> None:
        """Export what is queued (bounded by the exporter's timeout), write what the inner
        layer queued, and stop their threads."""
        if self._processor is not None:
            self._processor.shutdown()  # type: ignore[no-untyped-call]
        if self.inner is not None:
            self.inner.close()

    def _tracer(self, agent: str, environment: str) -> trace.Tracer:
        tracer = self._tracers.get((agent, environment))
        if tracer is None:
            resource = Resource.create(
                {"service.name": agent, "deployment.environment.name": environment}
            )
            provider = TracerProvider(resource=resource, shutdown_on_exit=False)
            if self._processor is not None:
                provider.add_span_processor(self._processor)
            tracer = self._tracers[(agent, environment)] = provider.get_tracer(_SCOPE_NAME)
        return tracer

    def _attributes(self, upstream: Destination, scope: Scope, route: str) -> dict[str, str | int]:
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        attributes: dict[str, str | int] = {
            "http.request.method": str(scope["method"]),
            "http.route": route,
            "url.path": str(scope["path"]),
            "url.scheme": str(scope.get("scheme", "http")),
            "shipyard.agent": upstream.agent,
            "shipyard.environment": upstream.environment,
            "shipyard.version": upstream.version,
        }
        for name, value in headers:
            if name == b"host":
                attributes["server.address"] = value.decode("latin-1").split(":", 1)[0]
            elif name == b"user-agent":
                attributes["user_agent.original"] = value.decode("latin-1")
            elif name == b"content-length" and value.isdigit():
                attributes["http.request.body.size"] = int(value)
        client = scope.get("client")
        if client:
            attributes["client.address"] = str(client[0])
        if self._commit_of is not None:
            commit = self._commit_of(upstream.agent, upstream.environment, upstream.version)
            if commit:
                attributes["shipyard.commit"] = commit
        return attributes


def _content_length(headers: Iterable[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name == b"content-length" and value.isdigit():
            return int(value)
    return None
