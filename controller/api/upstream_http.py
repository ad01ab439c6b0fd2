"""A lean HTTP/1.1 client for the router: pooled keep-alive connections to local agents.

The router forwards every agent request, so its client's cost is paid on each one.
General clients (httpx, aiohttp) spend 150-300 µs of Python per request on features a
loopback hop to a known agent does not need (redirects, cookies, proxies, TLS,
decompression). This one writes the request head in one write, parses the reply with
llhttp (through httptools, the parser uvicorn uses) and hands body pieces on as they
arrive, so server-sent events and chunked replies pass through unbuffered. Connections
go back to a per-address pool when a reply ends cleanly and the agent keeps them alive.
An agent that goes silent (no reply head, or a stream with no new byte, for the pool's
`agent_timeout`) has its connection closed and its request failed with `UpstreamTimeout`:
a hung agent costs a client a bounded wait (a 504), not a connection held forever. One
sweep a second finds them, so a request pays two set operations, not a timer.
Local agents listen on 127.0.0.1 (a port each); the gateway reaches pods at their own
address and container port.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import cast

import httptools

# Bytes kept from the agent before the socket stops being read: bounds memory when the
# client reads slower than the agent writes.
_HIGH_WATER = 256 * 1024
_IDLE_PER_PORT = 64
# A sized reply is held whole for one write to the client up to this size; past it (or
# for a stream) a `send_idle` caller is handed the reply as it arrives.
_WHOLE_LIMIT = 64 * 1024
# As nginx's proxy_read_timeout, but long: a model's answer can take minutes to start.
DEFAULT_AGENT_TIMEOUT_SECONDS = 300.0
_SWEEP_SECONDS = 1.0

# Told once: the reply (head in, body whole or arriving), or why the agent never answered.
OnReply = Callable[["Reply | UpstreamError"], None]


class UpstreamError(Exception):
    """The agent could not be reached, or broke off its reply."""


class UpstreamTimeout(UpstreamError):
    """The agent sent nothing (no reply head, or no more of a reply) for too long."""


class ClientGone(Exception):
    """The client disconnected while its request body was being forwarded."""


@dataclass
class Reply:
    """Status and headers of an agent's reply; the body follows through `body()`."""

    status: int
    headers: list[tuple[bytes, bytes]]
    _connection: _Connection = field(repr=False)

    @property
    def streamed(self) -> bool:
        """No Content-Length: the reply runs (chunked or until close) as long as the agent likes."""
        return not self._connection.sized

    def body(self) -> AsyncIterator[tuple[bytes, bool]]:
        """Body pieces as they arrive, each with whether it is known to be the last."""
        return self._connection.body()

    async def body_started(self) -> None:
        """Wait until the first piece of the body (or its end) has arrived."""
        await self._connection.body_started()

    def whole_body(self) -> bytes | None:
        """The whole body if it has already arrived with the head (most small replies),
        taken at once; None while more is to come (then read `body()`)."""
        return self._connection.whole_body()

    def failure(self) -> UpstreamError | None:
        """Why the reply ended before any of its body came (the agent went silent, or
        closed), if it did: then nothing of it need reach the client but an error."""
        return self._connection.failure_before_body()

    def abort(self) -> None:
        """Drop the reply (the client left): the connection closes and `body()` ends."""
        self._connection.abort()

    def close(self) -> None:
        """Finish with the reply: its connection goes back to the pool if it can be reused."""
        self._connection.finish()


class _Connection(asyncio.Protocol):
    def __init__(self, pool: UpstreamPool, address: tuple[str, int]) -> None:
        self._pool = pool
        self._address = address
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._headers: list[tuple[bytes, bytes]] = []
        self._head: asyncio.Future[int] | None = None
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._wake: asyncio.Event = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()
        self._complete = False
        self._lost = False
        self._aborted = False  # dropped on our side: the client left
        self._sending = False  # a request body is still being written to the agent
        self._failure: UpstreamError | None = None
        self._paused = False
        self._head_only = False
        self._delimited = False  # the reply's length is known (Content-Length or chunked)
        self.sized = False  # the reply has a Content-Length
        self._keep_alive = False
        self._on_reply: OnReply | None = None
        self._reply_ready = False  # `_on_reply` is due once the parser has returned
        self.heard_at = 0.0  # when the agent last sent something, while a request is out

    # asyncio.Protocol ----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Event loops may implement asyncio.Transport without subclassing it (uvloop).
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.heard_at = time.monotonic()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as error:
            self._fail(UpstreamError(f"malformed reply: {error}"))
            if self._transport is not None:
                self._transport.close()
        if self._reply_ready:
            self._tell_reply()
        if self._buffered > _HIGH_WATER and not self._paused and self._transport is not None:
            self._paused = True
            self._transport.pause_reading()

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self._pool.done(self)
        self._lost = True
        self._writable.set()  # a paused upload ends: nothing more can be sent
        if self._head is not None and not self._head.done():
            self._fail(UpstreamError("the agent closed the connection before replying"))
        elif not self._delimited:
            self._complete = True  # a reply without a length ends when the agent closes
        self._wake.set()
        self._tell_reply()

    # httptools callbacks -------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200:  # an interim reply: the real one follows
            self._headers = []
            return
        for name, value in self._headers:
            lowered = name.lower()
            if lowered == b"content-length":
                self._delimited = self.sized = True
            elif lowered == b"transfer-encoding" and b"chunked" in value.lower():
                self._delimited = True
        # Asked here: once the message is complete llhttp has moved on and answers False.
        self._keep_alive = self._parser.should_keep_alive()
        if self._head is not None and not self._head.done():
            self._head.set_result(status)
        if self._head_only:
            self._complete = True  # a reply to HEAD has no body whatever its headers say
            self._wake.set()
        if self._head_only or not self.sized:
            self._reply_ready = True  # a stream's head goes out at once

    def on_body(self, body: bytes) -> None:
        self._chunks.append(body)
        self._buffered += len(body)
        self._wake.set()
        if self._buffered > _WHOLE_LIMIT:
            self._reply_ready = True

    def on_message_complete(self) -> None:
        if self._head is not None and self._head.done():
            self._complete = True
            self._wake.set()
            self._reply_ready = True

    # the router's side ---------------------------------------------------------------
    async def exchange(
        self, head: bytes, body: AsyncIterator[bytes] | None, chunked: bool
    ) -> Reply:
        assert self._transport is not None
        self._head = asyncio.get_running_loop().create_future()
        self._head_only = head.startswith(b"HEAD ")
        self._pool.waiting(self)
        try:
            if body is None:
                self._transport.write(head)
            else:
                # A slow upload is the client's time, not the agent's silence.
                self._sending = True
                try:
                    await self._send_body(head, body, chunked)
                finally:
                    self._sending = False
                    self.heard_at = time.monotonic()
            status = await self._head
        except BaseException:
            # Half a request on the wire (client gone, cancelled): the connection is spent.
            self.close()
            raise
        return Reply(status, self._headers, self)

    def send(self, head: bytes, on_reply: OnReply) -> None:
        """Write a request whose head (and body) is `head`, and call `on_reply` once the
        reply is whole, or is a stream or large, or failed: no task, no awaiting."""
        assert self._transport is not None
        self._head = asyncio.get_running_loop().create_future()
        self._head_only = head.startswith(b"HEAD ")
        self._on_reply = on_reply
        self._pool.waiting(self)
        self._transport.write(head)

    def _tell_reply(self) -> None:
        self._reply_ready = False
        on_reply, self._on_reply = self._on_reply, None
        if on_reply is None:
            return
        head = self._head
        if head is None or not head.done() or head.exception() is not None:
            self.close()
            on_reply(
                self._failure or UpstreamError("the agent closed the connection before replying")
            )
        else:
            on_reply(Reply(head.result(), self._headers, self))

    async def _send_body(self, head: bytes, body: AsyncIterator[bytes], chunked: bool) -> None:
        """Head and body, the head written with the first piece: a request whose body came
        in one piece (most do) costs one write, not two."""
        assert self._transport is not None
        pending = head
        async for piece in body:
            if self._lost:
                return
            framed = b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece
            self._transport.write(pending + framed if pending else framed)
            pending = b""
            # An agent reading slower than the client uploads: wait, do not buffer.
            await self._writable.wait()
        if not self._lost:
            self._transport.write(pending + b"0\r\n\r\n" if chunked else pending)

    async def body_started(self) -> None:
        while not self._chunks and not self._complete and not self._lost:
            self._wake.clear()
            await self._wake.wait()

    def whole_body(self) -> bytes | None:
        if not self._complete:
            return None
        chunks = self._chunks
        whole = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self._buffered = 0
        if self._paused and self._transport is not None:
            self._paused = False
            self.heard_at = time.monotonic()  # the wait was the client's
            self._transport.resume_reading()
        return whole

    async def body(self) -> AsyncIterator[tuple[bytes, bool]]:
        while True:
            while self._chunks:
                piece = self._chunks.popleft()
                self._buffered -= len(piece)
                if self._paused and self._buffered <= _HIGH_WATER // 2 and self._transport:
                    self._paused = False
                    self.heard_at = time.monotonic()  # the wait was the client's
                    self._transport.resume_reading()
                yield piece, self._complete and not self._chunks
            if self._complete:
                return
            if self._lost:
                if self._aborted:
                    return  # the client left: nobody to tell
                # Ended short of its length (or of its last chunk): the client must see a
                # broken reply, not a whole one.
                raise self._failure or UpstreamError("the agent broke off its reply")
            self._wake.clear()
            await self._wake.wait()

    def finish(self) -> None:
        self._pool.done(self)
        reusable = (
            self._complete
            and not self._lost
            and not self._chunks
            and not self._head_only
            and self._keep_alive
        )
        if reusable:
            self._reset()
            self._pool.release(self._address, self)
        elif self._transport is not None:
            self._transport.close()

    def _reset(self) -> None:
        self._on_reply = None
        self._reply_ready = False
        self._parser = httptools.HttpResponseParser(self)
        self._headers = []
        self._head = None
        self._buffered = 0
        self._complete = False
        self._delimited = False
        self.sized = False
        self._keep_alive = False

    def _fail(self, error: UpstreamError) -> None:
        if self._head is not None and not self._head.done():
            self._head.set_exception(error)
        self._failure = error
        self._lost = True
        self._wake.set()

    @property
    def awaiting_agent(self) -> bool:
        """Whether the agent owes more: not when its reply is whole (the router may still
        be writing it to a slow client), nor while reading is paused for such a client,
        nor while the client's upload is still being written."""
        return not self._paused and not self._complete and not self._sending

    def failure_before_body(self) -> UpstreamError | None:
        if self._lost and not self._chunks and not self._complete:
            return self._failure or UpstreamError(
                "the agent closed the connection before its reply's body"
            )
        return None

    def abort(self) -> None:
        self._aborted = True
        self.close()

    def time_out(self, seconds: float) -> None:
        """The agent has been silent for `seconds`: fail the request, drop the connection."""
        self._fail(UpstreamTimeout(f"the agent sent nothing for {seconds:g} s"))
        self.close()
        self._tell_reply()

    @property
    def usable(self) -> bool:
        return not self._lost and self._transport is not None and not self._transport.is_closing()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


PooledConnection = _Connection
"""What `UpstreamPool.send_idle` sent a request on (to `abort` it if the client leaves)."""


class UpstreamPool:
    """Keep-alive connections to agents, kept per address (127.0.0.1 and a port, locally)."""

    def __init__(
        self,
        connect_timeout: float = 5.0,
        agent_timeout: float = DEFAULT_AGENT_TIMEOUT_SECONDS,
    ) -> None:
        self._connect_timeout = connect_timeout
        self.agent_timeout = agent_timeout
        self._idle: dict[tuple[str, int], collections.deque[_Connection]] = {}
        self._busy: set[_Connection] = set()
        self._sweep: asyncio.TimerHandle | None = None

    def waiting(self, connection: _Connection) -> None:
        """`connection` has a request out: from now on the agent's silence is timed."""
        connection.heard_at = time.monotonic()
        self._busy.add(connection)
        if self._sweep is None:
            self._sweep = asyncio.get_running_loop().call_later(_SWEEP_SECONDS, self._swept)

    def done(self, connection: _Connection) -> None:
        self._busy.discard(connection)

    def _swept(self) -> None:
        self._sweep = None
        deadline = time.monotonic() - self.agent_timeout
        for connection in [c for c in self._busy if c.awaiting_agent and c.heard_at < deadline]:
            self._busy.discard(connection)
            connection.time_out(self.agent_timeout)
        if self._busy:
            self._sweep = asyncio.get_running_loop().call_later(_SWEEP_SECONDS, self._swept)

    def send_idle(
        self, port: int, head: bytes, on_reply: OnReply, host: str = "127.0.0.1"
    ) -> PooledConnection | None:
        """Send `head` (a whole request: `request_head` and any body) on an idle kept-alive
        connection to `host:port`, `on_reply` told of the outcome; the connection (to
        `abort` if the client leaves first), or None, sending nothing, when none is idle."""
        connection = self._idle_connection((host, port))
        if connection is None:
            return None
        connection.send(head, on_reply)
        return connection

    async def request(
        self,
        port: int,
        method: str,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        *,
        body: AsyncIterator[bytes] | None = None,
        body_length: int | None = None,
        host: str = "127.0.0.1",
    ) -> Reply:
        """Send one request; `body_length` None with a body means chunked.

        `headers` must not carry hop-by-hop fields, Host or Content-Length: those are
        this function's to write.
        """
        chunked = body is not None and body_length is None
        address = (host, port)
        head = request_head(
            port, method, target, headers, body_length=body_length, chunked=chunked, host=host
        )
        connection = self._idle_connection(address)
        if connection is not None and body is None:
            try:
                return await connection.exchange(head, None, chunked)
            except UpstreamTimeout:
                raise  # the agent took the request and went silent: never send it twice
            except UpstreamError:
                pass  # the agent closed the idle connection as it was reused: retry fresh
        elif connection is not None:
            # A body can be sent only once, so it goes on a connection known to be open.
            return await connection.exchange(head, body, chunked)
        return await (await self._connect(address)).exchange(head, body, chunked)

    def release(self, address: tuple[str, int], connection: _Connection) -> None:
        idle = self._idle.setdefault(address, collections.deque())
        if len(idle) < _IDLE_PER_PORT:
            idle.append(connection)
        else:
            connection.close()

    def close(self) -> None:
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()

    def _idle_connection(self, address: tuple[str, int]) -> _Connection | None:
        idle = self._idle.get(address)
        while idle:
            connection = idle.pop()
            if connection.usable:
                return connection
        return None

    async def _connect(self, address: tuple[str, int]) -> _Connection:
        loop = asyncio.get_running_loop()
        host, port = address
        try:
            _, connection = await asyncio.wait_for(
                loop.create_connection(lambda: _Connection(self, address), host, port),
                self._connect_timeout,
            )
        except (OSError, TimeoutError) as error:
            raise UpstreamError(f"cannot connect to {host}:{port}: {error}") from error
        return connection


def request_head(
    port: int,
    method: str,
    target: bytes,
    headers: list[tuple[bytes, bytes]],
    *,
    body_length: int | None,
    chunked: bool = False,
    host: str = "127.0.0.1",
) -> bytes:
    """The request line and headers as the agent is sent them (`headers` without
    hop-by-hop fields, Host or Content-Length)."""
    lines = [b"%s %s HTTP/1.1\r\nhost: %s:%d\r\n" % (method.encode(), target, host.encode(), port)]
    lines += [b"%s: %s\r\n" % pair for pair in headers]
    if chunked:
        lines.append(b"transfer-encoding: chunked\r\n")
    elif body_length is not None:
        lines.append(b"content-length: %d\r\n" % body_length)
    lines.append(b"\r\n")
    return b"".join(lines)
