"""Connections that do not finish a request's headers in time are closed.

uvicorn closes idle keep-alive connections, but not one that opens and sends nothing, or
sends part of a request line or headers and then stalls: such a connection holds a file
descriptor for as long as its client likes, and enough of them starve git and the agent
processes of descriptors. Here every request gets `header_timeout` seconds, from the
connection's start or the end of the previous response, to complete its headers (as
nginx's `client_header_timeout`). Bodies are not covered: each endpoint bounds its own
(see `webhook_intake`), and agent traffic may stream for as long as it needs.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


def protocol_with_header_timeout(
    header_timeout: float, *, parser: Literal["h11", "httptools"] = "h11"
) -> type[asyncio.Protocol]:
    """uvicorn's h11 (or httptools) protocol, closing connections that dawdle over their
    headers. `shipyard gateway` takes httptools: it only proxies, and llhttp parses a
    request in a fraction of h11's time (`bench/gateway.py`)."""
    base = H11Protocol if parser == "h11" else HttpToolsProtocol

    class HeaderTimeoutProtocol(base):  # type: ignore[valid-type,misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._header_timer: asyncio.TimerHandle | None = None
            self._armed_during: object = None

        def connection_made(self, transport: asyncio.Transport) -> None:
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            if self._header_timer is None and self._waiting_for_headers():
                self._arm()
            super().data_received(data)

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def handle_websocket_upgrade(self, *event: Any) -> None:
            self._disarm()  # the connection now belongs to the websocket protocol
            super().handle_websocket_upgrade(*event)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _waiting_for_headers(self) -> bool:
            return self.cycle is None or self.cycle.response_complete

        def _arm(self) -> None:
            self._armed_during = self.cycle
            self._header_timer = self.loop.call_later(header_timeout, self._headers_due)

        def _headers_due(self) -> None:
            self._header_timer = None
            if self.transport.is_closing() or not self._waiting_for_headers():
                return  # a request is being served; the next one is armed by its data
            if self.cycle is self._armed_during:
                self.transport.close()  # no request began within the whole period
            else:
                self._arm()  # a request came and went: the next one gets its own period

    return HeaderTimeoutProtocol
