"""Health probes over kept-alive connections, against real HTTP servers on loopback.

The probe keeps one connection per agent so idle probing stays cheap; these tests pin
what that must not cost: a restarted agent or a closed idle connection is never a false
failure, HTTP/1.0 agents and replies without a length still work, and failures say why.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from controller.targets.local.health_probe import HealthProbe

TIMEOUT = 10.0  # generous: the machine is shared; nothing here asserts a duration


class Agent(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int = 0, protocol: str = "HTTP/1.1", status: int = 200) -> None:
        handler = type("Handler", (_Handler,), {"protocol_version": protocol})
        super().__init__(("127.0.0.1", port), handler)
        self.status = status
        self.connections = 0
        self.sockets: list[socket.socket] = []
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def stop(self) -> None:
        """As a process exit would: the listener and every open connection close."""
        self.shutdown()
        self.server_close()
        for connection in self.sockets:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    server: Agent

    def setup(self) -> None:
        super().setup()
        self.server.connections += 1
        self.server.sockets.append(self.request)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if self.path == "/no-length":
            self.close_connection = True
            self.send_response(self.server.status)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"ok, until the connection closes")
            return
        body = b'{"status": "ok"}'
        self.send_response(self.server.status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def agent() -> Iterator[Agent]:
    server = Agent()
    yield server
    server.stop()


def check(probe: HealthProbe) -> tuple[bool, str]:
    return asyncio.run(probe.check(TIMEOUT))


def test_probes_reuse_one_connection(agent: Agent) -> None:
    probe = HealthProbe(agent.port, "/healthz")

    async def ten() -> list[tuple[bool, str]]:
        async with probe:
            return [await probe.check(TIMEOUT) for _ in range(10)]

    assert asyncio.run(ten()) == [(True, "HTTP 200")] * 10
    assert agent.connections == 1


def test_an_agent_restarted_on_the_same_port_is_not_a_false_failure(agent: Agent) -> None:
    port = agent.port

    async def across_a_restart() -> list[tuple[bool, str]]:
        async with HealthProbe(port, "/healthz") as probe:
            before = await probe.check(TIMEOUT)
            await asyncio.to_thread(agent.stop)
            restarted = await asyncio.to_thread(Agent, port)
            try:
                after = await probe.check(TIMEOUT)
            finally:
                await asyncio.to_thread(restarted.stop)
            assert restarted.connections == 1  # the stale connection was replaced
            return [before, after]

    assert asyncio.run(across_a_restart()) == [(True, "HTTP 200"), (True, "HTTP 200")]


def test_http_1_0_agents_and_replies_without_length_work() -> None:
    old = Agent(protocol="HTTP/1.0")
    try:

        async def probes() -> list[tuple[bool, str]]:
            async with HealthProbe(old.port, "/healthz") as plain:
                first = [await plain.check(TIMEOUT) for _ in range(3)]
            async with HealthProbe(old.port, "/no-length") as unsized:
                return [*first, await unsized.check(TIMEOUT), await unsized.check(TIMEOUT)]

        assert asyncio.run(probes()) == [(True, "HTTP 200")] * 5
    finally:
        old.stop()


def test_an_error_status_is_unhealthy_and_says_so() -> None:
    sick = Agent(status=503)
    try:
        assert check(HealthProbe(sick.port, "/healthz")) == (False, "HTTP 503")
    finally:
        sick.stop()


def test_nothing_listening_is_unhealthy_with_the_reason() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    healthy, detail = check(HealthProbe(port, "/healthz"))
    assert not healthy
    assert "ConnectionRefusedError" in detail


def test_an_agent_that_never_answers_times_out() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = int(listener.getsockname()[1])
        probe = HealthProbe(port, "/healthz")
        assert asyncio.run(probe.check(0.2)) == (False, "no answer within 0.2s")
