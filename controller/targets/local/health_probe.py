"""Health probes for one local agent over a kept-alive connection.

Fifty agents probed every two seconds are 25 probes a second, forever. With a new
connection and a fresh httpx request each time, that alone kept an idle controller at
~4% of a core. One connection per agent, reused while the agent keeps it open, costs a
write and a read per probe. A reused connection can be stale (the agent restarted on the
same port, or closed an idle connection): when it fails before any reply arrives, the
probe tries once more on a fresh connection, so a healthy agent is never reported
unhealthy because of a connection it did not know about.
"""

from __future__ import annotations

import asyncio
import contextlib

import httptools

_READ_SIZE = 16 * 1024


class _Reply:
    """httptools callbacks: status, whether the connection stays open, when it ends."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.status = 0
        self.keep_alive = False
        self.complete = False
        self.started = False

    def on_message_begin(self) -> None:
        self.started = True

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200:
            return  # an interim reply: the real one follows
        self.status = status
        # Asked here: once the message is complete llhttp has moved on and answers False.
        self.keep_alive = self.parser.should_keep_alive()

    def on_message_complete(self) -> None:
        if self.status:
            self.complete = True


class HealthProbe:
    """`GET path` on 127.0.0.1:port, reusing one connection between probes."""

    def __init__(self, port: int, path: str) -> None:
        self._port = port
        self._request = (
            f"GET {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n"
            "user-agent: shipyard-health-probe\r\naccept: */*\r\n\r\n"
        ).encode("latin-1")
        self._connection: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def check(self, timeout: float) -> tuple[bool, str]:
        """(healthy, what was seen): healthy is a 2xx answer within `timeout` seconds."""
        try:
            async with asyncio.timeout(timeout):
                status = await self._get()
        except TimeoutError:
            self.close()
            return False, f"no answer within {timeout:g}s"
        except (OSError, httptools.HttpParserError, EOFError) as error:
            self.close()
            return False, f"{type(error).__name__}: {error}"
        return 200 <= status < 300, f"HTTP {status}"

    def close(self) -> None:
        if self._connection is not None:
            self._connection[1].close()
            self._connection = None

    async def __aenter__(self) -> HealthProbe:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    async def _get(self) -> int:
        if self._connection is not None:
            reply = await self._exchange(self._connection)
            if reply is not None:
                return reply
            self.close()  # stale: closed by the agent before it answered; try afresh
        self._connection = await asyncio.open_connection("127.0.0.1", self._port)
        reply = await self._exchange(self._connection)
        if reply is None:
            self.close()
            raise EOFError("the agent closed the connection without answering")
        return reply

    async def _exchange(
        self, connection: tuple[asyncio.StreamReader, asyncio.StreamWriter]
    ) -> int | None:
        """The reply's status, or None when the connection ended before any reply began."""
        reader, writer = connection
        reply = _Reply()
        try:
            writer.write(self._request)
            await writer.drain()
            while not reply.complete:
                data = await reader.read(_READ_SIZE)
                if not data:
                    break
                reply.parser.feed_data(data)
        except ConnectionError:
            if not reply.started:
                return None
            raise
        if not reply.complete:
            if not reply.started:
                return None
            if not reply.status:
                raise EOFError("the agent closed the connection mid-reply")
            # A reply without a length ends when the agent closes: that is complete.
            self.close()
            return reply.status
        if not reply.keep_alive:
            with contextlib.suppress(OSError):
                self.close()
        return reply.status
