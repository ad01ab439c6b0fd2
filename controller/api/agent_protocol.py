"""Agent requests served on the HTTP protocol itself, below ASGI.

Through ASGI every proxied request costs a task running uvicorn's cycle, the proxy-headers
middleware, the router's coroutines and a dict per message, about half of the router's
CPU per request (docs/performance.md, "Router"). An agent request needs none of it: once
its headers are parsed and its Host names an agent, `FastRequest` sends it to the agent
on a pooled connection (`upstream_http`) and writes the reply straight to the client's
transport, with the same stamps, trace context, span, metrics and canary choice as
`proxy.Router`.

Only the common case takes this path: a request with no body or a small sized one
(buffered, at most `BUFFERED_BODY_LIMIT`), no `Expect`, no upgrade, no forwarding headers
for uvicorn's proxy-headers middleware to apply, no request still in flight on the
connection. A recorded version's copy (request body, status, headers as sent, reply body)
is filled here as through `proxy.Router`. Everything else (streamed uploads, the API,
unknown agent hosts) goes to the ASGI app as before, on the
same connection: uvicorn's parser, limits, pipelining queue and keep-alive handling stay
in charge, and this path only stands where uvicorn keeps its request cycle.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.parse
from collections.abc import AsyncIterator, Coroutine
from typing import TYPE_CHECKING, Any

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE

from controller.api import traffic_split, upstream_http
from controller.api.proxy import (
    HOP_BY_HOP,
    Router,
    Upstream,
    endpoint,
    forwarded,
    not_answering,
    reply_broke,
)
from controller.api.tracing import Exchange

if TYPE_CHECKING:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("shipyard")

# Larger bodies stream through the ASGI path instead of being held here.
BUFFERED_BODY_LIMIT = 64 * 1024
# Headers that make the ASGI path's answer differ (uvicorn's proxy-headers middleware
# rewrites the client and scheme from them) or need its machinery.
_ASGI_ONLY = frozenset({b"x-forwarded-for", b"x-forwarded-proto", b"expect", b"transfer-encoding"})


class _NoEvent:
    """uvicorn sets its cycle's event when the connection is lost; this path is told by
    `client_gone` instead."""

    def set(self) -> None:
        pass


_NO_EVENT = _NoEvent()


def take(protocol: HttpToolsProtocol, router: Router) -> FastRequest | None:
    """Serve the request whose headers `protocol` just parsed here, if it is an agent
    request this path can serve; None leaves it to the ASGI app."""
    cycle = protocol.cycle
    if (cycle is not None and not cycle.response_complete) or protocol.pipeline:
        return None  # pipelined behind a request in flight: uvicorn queues it
    if protocol.limit_concurrency is not None or protocol.parser.should_upgrade():
        return None
    host = b""
    length = 0
    for name, value in protocol.headers:  # names are lower case (uvicorn's on_header)
        if name == b"host":
            host = value
        elif name == b"content-length":
            if not value.isdigit():
                return None
            length = int(value)
        elif name in _ASGI_ONLY:
            return None
    if length > BUFFERED_BODY_LIMIT:
        return None
    upstream = router.upstreams().get(host.partition(b":")[0].decode("latin-1").lower())
    if upstream is None:
        return None
    scope: Any = protocol.scope
    method = protocol.parser.get_method().decode("ascii")
    scope["method"] = method
    http_version = protocol.parser.get_http_version()
    if http_version != "1.1":
        scope["http_version"] = http_version
    parsed = httptools.parse_url(protocol.url)
    raw_path = parsed.path
    path = raw_path.decode("ascii")
    scope["path"] = urllib.parse.unquote(path) if "%" in path else path
    scope["raw_path"] = raw_path
    scope["query_string"] = parsed.query or b""
    if upstream.canary is not None:
        upstream = traffic_split.choose(upstream, scope)
    keep_alive = http_version != "1.0" and protocol.parser.should_keep_alive()
    return FastRequest(protocol, router, upstream, scope, keep_alive, expects_body=length > 0)


class FastRequest:
    """One agent request on the protocol, in the place uvicorn keeps its request cycle."""

    def __init__(
        self,
        protocol: HttpToolsProtocol,
        router: Router,
        upstream: Upstream,
        scope: Any,
        keep_alive: bool,
        *,
        expects_body: bool,
    ) -> None:
        self.protocol = protocol
        self.router = router
        self.upstream = upstream
        self.scope = scope
        self.keep_alive = keep_alive
        self.expects_body = expects_body
        self.body = bytearray()
        self.response_complete = False
        self.disconnected = False
        self.message_event = _NO_EVENT
        self.exchange = Exchange()
        self._reply: upstream_http.Reply | None = None
        # Until the reply's head: what to drop if the client leaves first (an agent that
        # never answers must not keep a connection per abandoned request).
        self._sent_on: upstream_http.PooledConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._started = False
        self._answered = False
        self._began = 0.0
        self._endpoint: tuple[str, int] = ("127.0.0.1", upstream.port)

    # what the protocol tells it --------------------------------------------------------
    def start(self) -> None:
        """Begin once the request is whole (at once when it has no body). On an idle
        connection to the agent the request is written here and the reply handled in the
        upstream connection's callback: no task unless the reply streams or is large."""
        if self._started:
            return
        self._started = True
        router = self.router
        upstream = self.upstream
        exchange = self.exchange
        tracing = router.tracing
        if tracing is not None:
            tracing.start(self.scope, exchange)
            if tracing.inner is not None:
                tap = exchange.tap = tracing.inner.tap(upstream, self.scope)
                if tap is not None and self.body:
                    tap.request_body(bytes(self.body))
        self._began = time.perf_counter()
        target, headers, has_body, body_length = forwarded(self.scope, exchange.traceparent)
        exchange.received = body_length
        address, port = self._endpoint = endpoint(upstream)
        head = upstream_http.request_head(
            port, self.scope["method"], target, headers, body_length=body_length, host=address
        )
        if has_body:
            head += self.body
        self._sent_on = router.pool.send_idle(port, head, self._on_reply, host=address)
        if self._sent_on is None:
            self._spawn(self._connect_and_proxy(target, headers, has_body, body_length))

    def add_body(self, piece: bytes) -> None:
        self.body += piece

    def client_gone(self) -> None:
        self.disconnected = True
        if self._reply is not None:
            self._reply.abort()  # stop reading a stream nobody will receive
        elif self._sent_on is not None:
            self._sent_on.abort()  # no reply yet: nobody is left to wait for one
        elif self._task is not None:
            self._task.cancel()

    # serving ---------------------------------------------------------------------------
    def _on_reply(self, reply: upstream_http.Reply | upstream_http.UpstreamError) -> None:
        self._sent_on = None
        if isinstance(reply, upstream_http.UpstreamError):
            target, headers, has_body, body_length = forwarded(
                self.scope, self.exchange.traceparent
            )
            if self.disconnected:
                self._finish()
            elif isinstance(reply, upstream_http.UpstreamTimeout) or has_body:
                # Never sent twice: the agent may have taken it (as `UpstreamPool.request`,
                # which retries only a request without a body).
                self._not_answering(reply)
                self._finish()
            else:
                # The agent closed the idle connection as it was reused: a fresh one.
                self._spawn(self._connect_and_proxy(target, headers, has_body, body_length))
            return
        try:
            self._reply = reply
            if self.disconnected:
                reply.abort()
            elif reply.streamed or (whole := reply.whole_body()) is None:
                self._spawn(self._relay_to_end(reply))
                return
            else:
                self.exchange.status = reply.status
                self.exchange.sent = len(whole)
                if (tap := self.exchange.tap) is not None:
                    tap.response_start(reply.status, self._client_headers(reply))
                    tap.response_body(whole)
                head = self._head_of(reply)
                self._write(head if self.scope["method"] == "HEAD" else head + whole)
            reply.close()
        except Exception as error:
            self._failed(error)
        self._finish()

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        protocol = self.protocol
        task = self._task = protocol.loop.create_task(work)
        task.add_done_callback(protocol.tasks.discard)
        protocol.tasks.add(task)

    async def _relay_to_end(self, reply: upstream_http.Reply) -> None:
        try:
            await self._relay(reply)
        except upstream_http.UpstreamError as error:
            self._broken(error)
        except Exception as error:
            self._failed(error)
        finally:
            reply.close()
            self._finish()

    async def _connect_and_proxy(
        self,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        has_body: bool,
        body_length: int | None,
    ) -> None:
        try:
            try:
                address, port = self._endpoint
                reply = await self.router.pool.request(
                    port,
                    self.scope["method"],
                    target,
                    headers,
                    body=_once(bytes(self.body)) if has_body else None,
                    body_length=body_length,
                    host=address,
                )
            except upstream_http.UpstreamError as error:
                self._not_answering(error)
                return
            self._reply = reply
            try:
                if self.disconnected:
                    reply.abort()
                    return
                await self._relay(reply)
            finally:
                reply.close()
        except upstream_http.UpstreamError as error:
            self._broken(error)
        except Exception as error:
            self._failed(error)
        finally:
            self._finish()

    def _not_answering(self, error: upstream_http.UpstreamError) -> None:
        body = not_answering(self.upstream, self.exchange, error)
        self._json(self.exchange.status, body)

    def _broken(self, error: upstream_http.UpstreamError) -> None:
        """The agent failed during its reply: before anything reached the client, a 502 or
        504 says so; after, the client's connection ends without the reply's end (no last
        chunk, fewer bytes than its length), so it knows."""
        if not self._answered:
            self.exchange.error = type(error).__qualname__
            self._not_answering(error)
            return
        self.keep_alive = False
        reply_broke(self.upstream, self.exchange, error)

    def _failed(self, error: Exception) -> None:
        """A bug here must not leave the client waiting: a 500, and the connection ends."""
        self.exchange.error = type(error).__qualname__
        log.error("agent request to %s failed in the router", self.upstream.agent, exc_info=error)
        if not self._answered:
            self._write(
                b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n"
                b"connection: close\r\n\r\n"
            )
        self.keep_alive = False

    def _finish(self) -> None:
        """Count, trace, and end the response as uvicorn's cycle does: the next request
        (or a pipelined one), or the connection's end."""
        router = self.router
        upstream = self.upstream
        exchange = self.exchange
        latency = exchange.latency = time.perf_counter() - self._began
        if router.metrics is not None:
            router.metrics.observe_request(
                upstream.agent, upstream.environment, upstream.version, exchange.status, latency
            )
        tracing = router.tracing
        if tracing is not None:
            if tracing.inner is not None and exchange.tap is not None:
                complete = exchange.error is None and not self.disconnected
                tracing.inner.tapped(upstream, self.scope, exchange.tap, latency, complete)
            tracing.finish(upstream, self.scope, exchange)
        self.response_complete = True
        self._reply = None
        protocol = self.protocol
        if not self.keep_alive or self.disconnected:
            protocol.transport.close()
        protocol.on_response_complete()

    def _head_of(self, reply: upstream_http.Reply) -> bytes:
        """Status line and headers for the client, stamped with the version that answered."""
        head = [STATUS_LINE[reply.status]]
        for name, value in reply.headers:
            if name.lower() not in HOP_BY_HOP:
                head += (name, b": ", value, b"\r\n")
        for name, value in self.upstream.stamp:
            head += (name, b": ", value, b"\r\n")
        if self._chunked(reply):
            head.append(b"transfer-encoding: chunked\r\n")
        if not self.keep_alive:
            head.append(b"connection: close\r\n")
        head.append(b"\r\n")
        return b"".join(head)

    def _client_headers(self, reply: upstream_http.Reply) -> list[tuple[bytes, bytes]]:
        """The reply's headers as `_head_of` sends them (for a recorded request's copy)."""
        headers = [pair for pair in reply.headers if pair[0].lower() not in HOP_BY_HOP]
        headers += self.upstream.stamp
        return headers

    def _chunked(self, reply: upstream_http.Reply) -> bool:
        return reply.streamed and self.scope["method"] != "HEAD" and reply.status not in (204, 304)

    async def _relay(self, reply: upstream_http.Reply) -> None:
        """A reply that streams or is large: the head, then each piece as it arrives."""
        exchange = self.exchange
        exchange.status = reply.status
        tap = exchange.tap
        if tap is not None:
            tap.response_start(reply.status, self._client_headers(reply))
        if not reply.streamed:
            # A sized reply's head is no use without its body (agents often write them apart).
            await reply.body_started()
            if (failure := reply.failure()) is not None:
                raise failure  # nothing sent yet: the client gets a 502 or 504
        head = self._head_of(reply)
        whole = reply.whole_body()
        if whole is not None:
            exchange.sent = len(whole)
            if tap is not None:
                tap.response_body(whole)
            self._write(head if self.scope["method"] == "HEAD" else head + whole)
            return
        self._write(head)
        if self.scope["method"] == "HEAD":
            return
        chunked = self._chunked(reply)
        transport = self.protocol.transport
        flow = self.protocol.flow
        async for piece, _ in reply.body():
            if self.disconnected or transport.is_closing():
                return
            exchange.sent += len(piece)
            if tap is not None:
                tap.response_body(piece)
            self._write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            if flow.write_paused:
                await flow.drain()  # a client reading slower than the agent writes
        if chunked:
            self._write(b"0\r\n\r\n")

    def _json(self, status: int, body: dict[str, Any]) -> None:
        payload = json.dumps(body, indent=2).encode() + b"\n"
        if (tap := self.exchange.tap) is not None:
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(payload)),
                *self.upstream.stamp,
            ]
            tap.response_start(status, headers)
            tap.response_body(payload)
        head = [STATUS_LINE[status], b"content-type: application/json\r\n"]
        head.append(b"content-length: %d\r\n" % len(payload))
        for name, value in self.upstream.stamp:
            head += (name, b": ", value, b"\r\n")
        if not self.keep_alive:
            head.append(b"connection: close\r\n")
        head += (b"\r\n", payload)
        self._write(b"".join(head))

    def _write(self, data: bytes) -> None:
        self._answered = True
        transport = self.protocol.transport
        if not transport.is_closing():
            transport.write(data)


async def _once(body: bytes) -> AsyncIterator[bytes]:
    yield body
