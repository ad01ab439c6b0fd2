"""One write per response: a transport that can hold writes until the response is whole.

uvicorn writes a response's head when the app sends `http.response.start` and its body
when the app sends `http.response.body`: two `send` syscalls, two TCP segments and two
wake-ups of the client for nearly every answer. ASGI has no message for "head and body
together", so the server puts this transport wrapper in each request's scope (under
`WRITES_KEY`); an app that has the whole answer at hand (the router, for an agent's
small reply) holds the writes, sends both messages, and releases them as one write.
Nothing else changes: without a hold every write goes straight through, so streams
(server-sent events, chunked replies) leave as the app sends them, and an app that does
not know the key is served as before. (Joining writes on the loop's next turn instead,
with `call_soon`, was tried: it cost a loop iteration of latency per answer and halved
the router's requests per second under `wrk -c 8`.)
"""

from __future__ import annotations

import asyncio
from typing import Any

WRITES_KEY = "shipyard.writes"


class CoalescedWrites(asyncio.Transport):
    """`transport`, whose writes between `hold` and `release` leave in one."""

    def __init__(self, transport: asyncio.Transport) -> None:
        super().__init__()
        self._transport = transport
        self._held: list[bytes] | None = None

    def hold(self) -> None:
        if self._held is None:
            self._held = []

    def release(self) -> None:
        held, self._held = self._held, None
        if held:
            self._transport.write(held[0] if len(held) == 1 else b"".join(held))

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._held is None:
            self._transport.write(data)
        elif data:
            self._held.append(bytes(data))

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def close(self) -> None:
        self.release()  # what the app wrote before closing is sent, as with a plain transport
        self._transport.close()

    def abort(self) -> None:
        self._held = None
        self._transport.abort()

    def write_eof(self) -> None:
        self.release()
        self._transport.write_eof()

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def get_write_buffer_size(self) -> int:
        held = sum(map(len, self._held)) if self._held else 0
        return self._transport.get_write_buffer_size() + held

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._transport.get_write_buffer_limits()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()
