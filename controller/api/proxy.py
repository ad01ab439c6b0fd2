"""The built-in router: requests for `{agent}--{environment}` hosts go to that agent's process.

A pure ASGI app in front of the API. It streams bodies both ways, keeps method, path,
query, headers and status, and stamps responses with the version and environment that
answered. A host shaped like an agent host that matches nothing gets a 404 that lists
what does exist, instead of falling through to the API.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from controller.api import tracing as tracing_
from controller.api import traffic_split, upstream_http
from controller.api.tracing import Exchange
from controller.api.write_coalescing import WRITES_KEY, CoalescedWrites
from controller.metrics.collector import Metrics

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger("shipyard")

# RFC 9110 §7.6.1: meaningful for one connection only, never forwarded.
_HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"host",
    }
)
# Written by the upstream client itself (Host, framing); `expect` because the router
# reads the body whatever the agent would say to it.
_NOT_FORWARDED = _HOP_BY_HOP | {b"content-length", b"expect"}
HOP_BY_HOP = _HOP_BY_HOP


@dataclass(frozen=True)
class Upstream:
    agent: str
    environment: str
    version: str
    port: int
    # While a canary runs: the canary's upstream and the percent of requests it answers.
    canary: Upstream | None = None
    canary_weight: int = 0
    sticky_header: bytes | None = None  # lower-case; its value pins a caller to a version
    # Where the gateway reaches this version: its ready pods' (address, port). Empty for
    # a local process, which listens on 127.0.0.1 at `port`.
    endpoints: tuple[tuple[str, int], ...] = ()
    # The headers stamped on each answer, made once here rather than per request.
    stamp: tuple[tuple[bytes, bytes], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        stamp = (
            (b"x-shipyard-version", self.version.encode()),
            (b"x-shipyard-environment", self.environment.encode()),
        )
        object.__setattr__(self, "stamp", stamp)


def endpoint(upstream: Upstream) -> tuple[str, int]:
    """Where one request for `upstream` goes: the local process, or (in the gateway) any
    ready pod of the version."""
    if upstream.endpoints:
        return random.choice(upstream.endpoints)  # noqa: S311 - spreading load, not secrecy
    return "127.0.0.1", upstream.port


def host_pattern(url_template: str) -> re.Pattern[str]:
    """A regex matching the host part of the preview URL template, any agent or environment."""
    host = re.sub(r"^[a-z]+://", "", url_template).split("/", 1)[0].split(":", 1)[0]
    pattern = re.escape(host)
    for part, group in (("agent", "agent"), ("env", "env"), ("environment", "env")):
        placeholder = re.escape("{" + part + "}")
        # The first occurrence names its part (the 404 tells what would help), the rest match.
        named = f"(?P<{group}>[a-z0-9-]+)" if f"(?P<{group}>" not in pattern else "[a-z0-9-]+"
        pattern = pattern.replace(placeholder, named, 1).replace(placeholder, "[a-z0-9-]+")
    return re.compile(f"^{pattern}$")


def host_of(url: str) -> str:
    return re.sub(r"^[a-z]+://", "", url).split("/", 1)[0].split(":", 1)[0].lower()


class Router:
    def __init__(
        self,
        api: ASGIApp,
        upstreams: Callable[[], Mapping[str, Upstream]],
        agent_hosts: re.Pattern[str],
        metrics: Metrics | None = None,
        tracing: tracing_.Tracing | None = None,
        *,
        agent_timeout: float = upstream_http.DEFAULT_AGENT_TIMEOUT_SECONDS,
    ) -> None:
        self.api = api
        self.tracing = tracing
        self.upstreams = upstreams
        self.agent_hosts = agent_hosts
        self.metrics = metrics
        self.pool = upstream_http.UpstreamPool(agent_timeout=agent_timeout)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.api(scope, receive, send)
            return
        host = _header(scope, b"host").split(":", 1)[0].lower()
        upstream = self.upstreams().get(host)
        if upstream is not None:
            if upstream.canary is not None:
                upstream = traffic_split.choose(upstream, scope)
            await self._serve(upstream, scope, receive, send)
        elif matched := self.agent_hosts.match(host):
            await self._unknown_host(host, matched, send)
        else:
            await self.api(scope, receive, send)

    def route(self, scope: Scope) -> Upstream | None:
        """The agent answering the request's Host, if any: one dict read at any size."""
        return self.upstreams().get(_header(scope, b"host").split(":", 1)[0].lower())

    async def aclose(self) -> None:
        self.pool.close()

    async def _serve(self, upstream: Upstream, scope: Scope, receive: Receive, send: Send) -> None:
        """Proxy one request, counted for the version that answered and, when tracing, in a
        span whose `traceparent` the agent receives (and, inside it, recorded if the version
        records). Status and sizes, and a recorded request's copy, are noted by `_proxy`
        itself, not by wrapping `receive` and `send`: the request path pays for no extra
        layer per message."""
        tracing = self.tracing
        exchange = Exchange()
        inner = None
        if tracing is not None:
            tracing.start(scope, exchange)
            inner = tracing.inner
            if inner is not None:
                exchange.tap = inner.tap(upstream, scope)
        started = time.perf_counter()
        complete = False
        try:
            await self._proxy(upstream, scope, receive, send, exchange)
            complete = True
        except BaseException as exc:
            exchange.error = type(exc).__qualname__
            raise
        finally:
            latency = exchange.latency = time.perf_counter() - started
            if self.metrics is not None:
                self.metrics.observe_request(
                    upstream.agent, upstream.environment, upstream.version, exchange.status, latency
                )
            if tracing is not None:
                if inner is not None and exchange.tap is not None:
                    inner.tapped(upstream, scope, exchange.tap, latency, complete)
                tracing.finish(upstream, scope, exchange)

    async def _proxy(
        self,
        upstream: Upstream,
        scope: Scope,
        receive: Receive,
        send: Send,
        exchange: Exchange,
    ) -> None:
        target, headers, has_body, body_length = forwarded(scope, exchange.traceparent)
        exchange.received = body_length
        address, port = endpoint(upstream)
        asked = self.pool.request(
            port,
            scope["method"],
            target,
            headers,
            body=_body(receive, exchange.tap) if has_body else None,
            body_length=body_length,
            host=address,
        )
        try:
            # Without a body to forward nothing reads `receive`: watch it for the client
            # leaving, or an agent that never answers keeps a connection per abandoned
            # request until the agent timeout.
            reply = await (asked if has_body else _unless_client_leaves(asked, receive))
        except upstream_http.ClientGone:
            return  # nobody is left to answer
        except upstream_http.UpstreamError as error:
            await _not_answering(send, upstream, exchange, error)
            return
        # A stream may never end by itself: stop reading it when the client leaves.
        watcher = asyncio.create_task(_on_disconnect(receive, reply)) if reply.streamed else None
        try:
            await _relay(reply, upstream, send, exchange, scope.get(WRITES_KEY))
        except upstream_http.UpstreamError as error:
            # The head has gone out: returning without the end of the body makes the
            # server close the connection, so the client sees a broken reply.
            reply_broke(upstream, exchange, error)
        finally:
            if watcher is not None:
                watcher.cancel()
            reply.close()

    async def _unknown_host(self, host: str, matched: re.Match[str], send: Send) -> None:
        """What would help: the same agent elsewhere, other agents of the same environment.

        Never every agent of every environment: a removed preview's visitor has no use for
        the URLs of unrelated previews.
        """
        parts = matched.groupdict()
        agent, environment = parts.get("agent"), parts.get("env")
        served = self.upstreams()
        related = sorted(
            name
            for name, upstream in served.items()
            if upstream.agent == agent or upstream.environment == environment
        )
        error = f"no agent is served at {host}"
        if environment is not None and all(u.environment != environment for u in served.values()):
            error += (
                f": environment {environment} serves nothing (a preview whose branch was "
                "merged, deleted or idle past its TTL is removed; a new one is still starting)"
            )
        body = {"error": error, "available": [f"http://{name}" for name in related]}
        await _json(send, 404, body, None)


def not_answering(
    upstream: Upstream, exchange: Exchange, error: upstream_http.UpstreamError
) -> dict[str, str]:
    """The JSON the client is answered when the agent fails before its reply, its status
    set on `exchange`: 504 when the agent went silent past the router's wait, 502 when it
    could not be reached or broke off."""
    exchange.status = 504 if isinstance(error, upstream_http.UpstreamTimeout) else 502
    return {
        "error": f"agent {upstream.agent} in {upstream.environment} is not answering",
        "detail": str(error),
    }


def reply_broke(upstream: Upstream, exchange: Exchange, error: upstream_http.UpstreamError) -> None:
    """The agent failed after its reply's head went out: noted on the span, logged."""
    exchange.error = type(error).__qualname__
    log.warning("agent %s in %s: %s", upstream.agent, upstream.environment, error)


def forwarded(
    scope: Scope, traceparent: bytes | None
) -> tuple[bytes, list[tuple[bytes, bytes]], bool, int | None]:
    """Target, headers, whether a body follows and its length, as the agent is sent them."""
    # Path and query as received: the agent sees the very target the client sent.
    target = scope.get("raw_path") or scope["path"].encode()
    query = scope.get("query_string", b"")
    if query:
        target += b"?" + query
    headers: list[tuple[bytes, bytes]] = []
    host = b""
    body_length: int | None = None
    has_body = False
    for pair in scope["headers"]:
        lowered = pair[0].lower()
        if lowered in _NOT_FORWARDED:
            if lowered == b"host":
                host = pair[1]
            elif lowered == b"content-length":
                body_length, has_body = _length(pair[1]), True
            elif lowered == b"transfer-encoding":
                has_body = True
        elif lowered != b"traceparent" or traceparent is None:
            headers.append(pair)
    if traceparent is not None:  # the router's span, in place of the caller's
        headers.append((b"traceparent", traceparent))
    client = scope.get("client")
    if client:
        headers.append((b"x-forwarded-for", client[0].encode("latin-1")))
    headers.append((b"x-forwarded-host", host))
    headers.append((b"x-forwarded-proto", scope.get("scheme", "http").encode("latin-1")))
    return target, headers, has_body, body_length


async def _relay(
    reply: upstream_http.Reply,
    upstream: Upstream,
    send: Send,
    exchange: Exchange,
    writes: CoalescedWrites | None,
) -> None:
    """The agent's reply to the client, stamped with the version that answered."""
    out_headers = [pair for pair in reply.headers if pair[0].lower() not in _HOP_BY_HOP]
    out_headers += upstream.stamp
    exchange.status = reply.status
    tap = exchange.tap
    if tap is not None:
        tap.response_start(reply.status, out_headers)
    start = {"type": "http.response.start", "status": reply.status, "headers": out_headers}
    if not reply.streamed:
        # A sized reply's head is no use without its body: wait for the body's first piece
        # (agents often write head and body apart). A stream's head goes at once: a
        # client may be waiting on it (server-sent events).
        await reply.body_started()
        if (failure := reply.failure()) is not None:
            await _not_answering(send, upstream, exchange, failure)  # nothing sent yet
            return
    whole = reply.whole_body()
    if whole is not None:  # the usual small answer: all there, head and body in one write
        exchange.sent = len(whole)
        if tap is not None:
            tap.response_body(whole)
        if writes is not None:
            writes.hold()
        try:
            await send(start)
            await send({"type": "http.response.body", "body": whole, "more_body": False})
        finally:
            if writes is not None:
                writes.release()
        return
    await send(start)
    # Each piece as it arrives, so streams stay live; the last one ends the reply.
    async for chunk, last in reply.body():
        exchange.sent += len(chunk)
        if tap is not None:
            tap.response_body(chunk)
        await send({"type": "http.response.body", "body": chunk, "more_body": not last})
        if last:
            return
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _body(receive: Receive, tap: tracing_.Tap | None) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise upstream_http.ClientGone
        chunk = message.get("body", b"")
        if tap is not None:
            tap.request_body(chunk)
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return


async def _not_answering(
    send: Send, upstream: Upstream, exchange: Exchange, error: upstream_http.UpstreamError
) -> None:
    body = not_answering(upstream, exchange, error)
    await _json(send, exchange.status, body, upstream, exchange.tap)


async def _unless_client_leaves(
    asked: Awaitable[upstream_http.Reply], receive: Receive
) -> upstream_http.Reply:
    """`asked`'s reply, or `ClientGone` (the request dropped) if the client leaves first."""
    request = asyncio.ensure_future(asked)
    leaving = asyncio.ensure_future(_disconnected(receive))
    try:
        await asyncio.wait((request, leaving), return_when=asyncio.FIRST_COMPLETED)
    finally:
        leaving.cancel()
        if not request.done():
            request.cancel()  # its connection closes: the agent's side ends too
    if not request.cancelled():
        return request.result()
    raise upstream_http.ClientGone


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _on_disconnect(receive: Receive, reply: upstream_http.Reply) -> None:
    await _disconnected(receive)
    reply.abort()


def _length(value: bytes) -> int:
    # The server's parser has already refused a Content-Length that is not digits.
    return int(value)


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return ""


async def _json(
    send: Send,
    status: int,
    body: dict[str, Any],
    upstream: Upstream | None,
    tap: tracing_.Tap | None = None,
) -> None:
    payload = json.dumps(body, indent=2).encode() + b"\n"
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
    ]
    if upstream is not None:
        headers += upstream.stamp
    if tap is not None:
        tap.response_start(status, headers)
        tap.response_body(payload)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload, "more_body": False})
