"""Connections that do not finish a request's headers in time are closed.

uvicorn closes idle keep-alive connections, but not one that opens and sends nothing, or
sends part of a request line or headers and then stalls: such a connection holds a file
descriptor for as long as its client likes, and enough of them starve git and the agent
processes of descriptors. Here every request gets `header_timeout` seconds, from the
connection's start or the end of the previous response, to complete its headers (as
nginx's `client_header_timeout`). Bodies are not covered: each endpoint bounds its own
(see `webhook_intake`), and agent traffic may stream for as long as it needs.

The protocol is uvicorn's httptools one (llhttp, the parser the router's upstream client
uses too), not its h11 one: h11 parses in Python and cost the router about a third of
its throughput (docs/performance.md, "Router"). Its transport is wrapped in `CoalescedWrites`
and offered to each request's scope, so an app can send a response's head and body in
one syscall.

Given the router, the protocol serves agent requests itself (`agent_protocol`), below
ASGI; everything else reaches the app as before.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from controller.api import agent_protocol
from controller.api.proxy import Router
from controller.api.write_coalescing import WRITES_KEY, CoalescedWrites


def protocol_with_header_timeout(
    header_timeout: float, router: Router | None = None
) -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol, closing connections that dawdle over their headers,
    and serving `router`'s agent requests below ASGI when given it."""

    class HeaderTimeoutProtocol(HttpToolsProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._header_timer: asyncio.TimerHandle | None = None
            self._armed_during: object = None
            self._fast: agent_protocol.FastRequest | None = None  # the latest served here
            self._fast_body: agent_protocol.FastRequest | None = None  # the one being read

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(CoalescedWrites(transport))
            self._arm()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self.scope[WRITES_KEY] = self.transport  # type: ignore[literal-required]

        def data_received(self, data: bytes) -> None:
            if self._header_timer is None and self._waiting_for_headers():
                self._arm()
            super().data_received(data)

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            fast = self._fast
            if fast is not None and not fast.response_complete:
                fast.client_gone()
            super().connection_lost(exc)

        def on_headers_complete(self) -> None:
            if router is not None:
                fast = agent_protocol.take(self, router)
                if fast is not None:
                    # uvicorn's checks (keep-alive, pipelining, header deadline) read the
                    # cycle's response_complete and keep_alive, which FastRequest has.
                    self.cycle = self._fast = self._fast_body = fast  # type: ignore[assignment]
                    if not fast.expects_body:
                        fast.start()
                    return
            self._fast_body = None
            super().on_headers_complete()

        def on_body(self, body: bytes) -> None:
            if self._fast_body is not None:
                self._fast_body.add_body(body)
            else:
                super().on_body(body)

        def on_message_complete(self) -> None:
            if self._fast_body is not None:
                self._fast_body.start()
            else:
                super().on_message_complete()

        def handle_websocket_upgrade(self) -> None:
            self._disarm()  # the connection now belongs to the websocket protocol
            super().handle_websocket_upgrade()

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
