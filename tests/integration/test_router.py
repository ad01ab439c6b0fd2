"""The built-in router against real HTTP on loopback: an agent server and the router's server.

The router sits on every request to a local agent, so what it must keep is tested here
on its own, with the same route table and server stack `shipyard serve` uses: streams
pass through as they are written (server-sent events, chunked uploads), connections to
agents are reused, bodies and targets arrive unchanged, a dead agent is a clear 502 and a
hung one a 504 (a stalled stream is cut, not ended), a
client that leaves a stream stops the agent's side too, and routes follow the table.
"""

from __future__ import annotations

import logging
import re
import select
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import uvicorn

from controller.api import connections, proxy, route_table, tracing
from controller.cli import event_loop
from controller.metrics.collector import Metrics
from controller.targets.local.target import Serving
from preview import naming

TEMPLATE = "http://{agent}--{env}.localhost:8080/"
HOST = "echo--production.localhost"
WAIT = 30.0  # generous: the machine is shared; nothing here asserts a duration


class Agent(ThreadingHTTPServer):
    """A keep-alive HTTP/1.1 agent that counts connections and can hold a stream open."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _AgentHandler)
        self.connections = 0
        self.open_connections = 0
        self.lock = threading.Lock()
        self.release_second_event = threading.Event()
        self.stream_closed = threading.Event()
        self.wake_silent = threading.Event()  # ends the silences of /silent and /stall
        self.silent_requests = 0  # how many requests for /silent arrived
        self.silent_left = threading.Event()  # the router closed a /silent connection
        self.posts_taken = 0  # POSTs read (and answered, or dropped after reading)

    @property
    def port(self) -> int:
        return int(self.server_address[1])


class _AgentHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: Agent

    def setup(self) -> None:
        super().setup()
        with self.server.lock:
            self.server.connections += 1
            self.server.open_connections += 1

    def finish(self) -> None:
        with self.server.lock:
            self.server.open_connections -= 1
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if self.path == "/events":
            self._events()
        elif self.path == "/forever":
            self._forever()
        elif self.path == "/silent":
            self._silent()
        elif self.path == "/head-then-nothing":
            self.send_response(200)
            self.send_header("Content-Length", "10")
            self.end_headers()
            self.wfile.flush()
            self.server.wake_silent.wait(WAIT)  # the head, then no body at all
            self.close_connection = True
        elif self.path == "/stall":
            self._stall()
        elif getattr(self, "drop_next", False):
            self.close_connection = True  # read, never answered: as an agent restarting
        elif self.path == "/then-drop":
            # Kept alive as far as the router can tell, but the next request on this
            # connection is dropped: the router must retry it on a fresh connection.
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")
            self.drop_next = True
        elif self.path == "/until-close":
            self.close_connection = True
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"no length: this body ends when the agent closes")
        else:
            body = f"{self.command} {self.path}".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Agent", "echo")
            self.send_header("X-Traceparent", self.headers.get("traceparent", ""))
            self.end_headers()
            self.wfile.write(body)

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "1000")
        self.end_headers()

    def do_POST(self) -> None:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = self._read_chunked()
        else:
            body = self.rfile.read(int(self.headers["Content-Length"]))
        with self.server.lock:
            self.server.posts_taken += 1
        if getattr(self, "drop_next", False):
            self.close_connection = True  # read, then the connection closed unanswered
            return
        reply = f"{self.headers.get('Content-Type')}|".encode() + body
        self.send_response(201)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def _read_chunked(self) -> bytes:
        body = b""
        while True:
            size = int(self.rfile.readline().strip(), 16)
            if size == 0:
                self.rfile.readline()
                return body
            body += self.rfile.read(size)
            self.rfile.readline()

    def _events(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self._chunk(b"data: first\n\n")
        # The second event waits for the test, which waits for the first: a router that
        # buffered the reply would hold the first back and the test would never release.
        if not self.server.release_second_event.wait(WAIT):
            return
        self._chunk(b"data: second\n\n")
        self._chunk(b"")

    def _silent(self) -> None:
        """A hung agent: the request read, never answered; tells when the router hangs up."""
        with self.server.lock:
            self.server.silent_requests += 1
        self.close_connection = True
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline and not self.server.wake_silent.is_set():
            readable, _, _ = select.select([self.connection], [], [], 0.05)
            if readable and not self.connection.recv(1, socket.MSG_PEEK):
                self.server.silent_left.set()
                return

    def _stall(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self._chunk(b"data: first\n\n")
        self.server.wake_silent.wait(WAIT)  # then nothing more: a stream gone silent
        self.close_connection = True

    def _forever(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            while True:
                self._chunk(b"data: tick\n\n")
                if self.server.stream_closed.wait(0.05):
                    return
        except OSError:
            self.server.stream_closed.set()  # the router closed its side: what we wait for
            self.close_connection = True

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()


class RouterServer:
    """The production Router under uvicorn, as `shipyard serve` runs it, in a thread."""

    def __init__(
        self,
        table: route_table.RouteTable,
        traced: tracing.Tracing | None = None,
        agent_timeout: float = 300.0,
    ) -> None:
        self.router = proxy.Router(
            _api,
            lambda: table.hosts,
            proxy.host_pattern(TEMPLATE),
            Metrics(),
            traced,
            agent_timeout=agent_timeout,
        )
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.server = uvicorn.Server(
            uvicorn.Config(
                self.router,
                host="127.0.0.1",
                port=self.port,
                lifespan="off",
                log_level="warning",
                loop=event_loop.resolve(event_loop.AUTO),  # as `shipyard serve` runs
                # and serve's protocol: httptools, the header deadline, coalesced writes
                # agent requests on the protocol itself (agent_protocol), as serve
                http=connections.protocol_with_header_timeout(60.0, self.router),
            )
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> RouterServer:
        self.thread.start()
        wait_until(lambda: self.server.started, "the router to start")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(WAIT)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


async def _api(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 418, "headers": []})
    await send({"type": "http.response.body", "body": b"api"})


def wait_until(check: Any, what: str) -> None:
    done = threading.Event()
    for _ in range(int(WAIT / 0.01)):
        if check():
            return
        done.wait(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def _url_of(agent: str, environment: str) -> str:
    return naming.preview_url(TEMPLATE, agent, environment)


@pytest.fixture
def agent() -> Iterator[Agent]:
    server = Agent()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.release_second_event.set()
    server.stream_closed.set()
    server.wake_silent.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def table(agent: Agent) -> route_table.RouteTable:
    return route_table.RouteTable(
        _url_of, [Serving("echo", "production", "v1", agent.port, "running")]
    )


@pytest.fixture
def router(table: route_table.RouteTable) -> Iterator[RouterServer]:
    with RouterServer(table) as server:
        yield server


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(headers={"host": HOST}, timeout=WAIT, trust_env=False) as http:
        yield http


def test_server_sent_events_pass_through_as_they_are_written(
    agent: Agent, router: RouterServer, client: httpx.Client
) -> None:
    with client.stream("GET", router.url("/events")) as response:
        assert response.headers["content-type"] == "text/event-stream"
        assert response.headers["x-shipyard-version"] == "v1"
        pieces = response.iter_raw()
        assert next(pieces) == b"data: first\n\n"
        agent.release_second_event.set()
        assert b"".join(pieces) == b"data: second\n\n"


def test_chunked_upload_reaches_the_agent_whole(router: RouterServer, client: httpx.Client) -> None:
    def upload() -> Iterator[bytes]:
        yield b'{"message": '
        yield b'"in two pieces"}'

    response = client.post(
        router.url("/chat"), content=upload(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 201
    assert response.content == b'application/json|{"message": "in two pieces"}'


def test_an_upload_larger_than_the_socket_buffers_arrives_whole(
    router: RouterServer, client: httpx.Client
) -> None:
    # Bigger than what the kernel buffers between router and agent: the router has to
    # wait for the agent to read (flow control) rather than fail or buffer it all.
    body = bytes(range(256)) * (32 * 1024)  # 8 MiB
    response = client.post(router.url("/chat"), content=body)
    assert response.status_code == 201
    assert response.content == b"None|" + body


def test_sized_body_method_status_and_headers_are_kept(
    router: RouterServer, client: httpx.Client
) -> None:
    response = client.post(router.url("/chat"), content=b"x" * 100_000)
    assert response.status_code == 201
    assert response.content == b"None|" + b"x" * 100_000
    echoed = client.get(router.url("/a%2Fb/c?q=%20&flag"))
    assert echoed.text == "GET /a%2Fb/c?q=%20&flag"  # the raw target, not decoded
    assert echoed.headers["x-agent"] == "echo"
    assert echoed.headers["x-shipyard-environment"] == "production"


def test_connections_to_the_agent_are_reused(
    agent: Agent, router: RouterServer, client: httpx.Client
) -> None:
    for index in range(20):
        assert client.get(router.url(f"/n/{index}")).text == f"GET /n/{index}"
    assert agent.connections == 1


def test_head_and_unsized_replies_end_where_they_should(
    router: RouterServer, client: httpx.Client
) -> None:
    head = client.head(router.url("/"))
    assert head.status_code == 200
    assert head.headers["content-length"] == "1000"
    until_close = client.get(router.url("/until-close"))
    assert until_close.content == b"no length: this body ends when the agent closes"
    # Neither left a connection in a state that breaks the next request.
    assert client.get(router.url("/after")).text == "GET /after"


def test_a_client_leaving_a_stream_closes_the_agents_side(
    agent: Agent, router: RouterServer, client: httpx.Client
) -> None:
    with client.stream("GET", router.url("/forever")) as response:
        assert next(response.iter_raw()).startswith(b"data: tick")
    assert agent.stream_closed.wait(WAIT), "the router kept reading a stream nobody wants"


def test_a_dead_agent_is_a_502_that_names_it(
    table: route_table.RouteTable, router: RouterServer, client: httpx.Client
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead_port = int(sock.getsockname()[1])
    table.switch("production", "echo", Serving("echo", "production", "v2", dead_port, ""))
    response = client.get(router.url("/"))
    assert response.status_code == 502
    assert "agent echo in production is not answering" in response.json()["error"]
    assert response.headers["x-shipyard-version"] == "v2"


def test_routes_follow_the_table(
    agent: Agent, table: route_table.RouteTable, router: RouterServer, client: httpx.Client
) -> None:
    table.switch("preview-x", "echo", Serving("echo", "preview-x", "v9", agent.port, ""))
    preview = client.get(router.url("/"), headers={"host": "echo--preview-x.localhost:8080"})
    assert preview.headers["x-shipyard-version"] == "v9"
    table.switch("preview-x", "echo", None)
    gone = client.get(router.url("/"), headers={"host": "echo--preview-x.localhost"})
    assert gone.status_code == 404
    assert gone.json()["available"] == [f"http://{HOST}"]
    assert client.get(router.url("/"), headers={"host": "localhost"}).text == "api"


def test_route_table_replaces_and_removes_one_slot() -> None:
    table = route_table.RouteTable(
        _url_of,
        [Serving("a", "production", "v1", 1, ""), Serving("b", "production", "v1", 2, "")],
    )
    table.switch("production", "a", Serving("a", "production", "v2", 3, ""))
    assert table.hosts["a--production.localhost"] == proxy.Upstream("a", "production", "v2", 3)
    table.switch("production", "b", None)
    table.switch("production", "missing", None)
    assert sorted(table.hosts) == ["a--production.localhost"]


def test_a_name_without_a_url_gets_no_route_and_breaks_nothing() -> None:
    table = route_table.RouteTable(_url_of)
    table.switch("Not A Label", "a", Serving("a", "Not A Label", "v1", 1, ""))
    assert dict(table.hosts) == {}


def _exchange_raw(port: int, data: bytes) -> bytes:
    """Send `data` as is and read until the router closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


def test_pipelined_requests_are_answered_in_order_whichever_path_serves_them(
    router: RouterServer,
) -> None:
    # Agent requests are served on the protocol, the API through ASGI: on one
    # connection, in one write, they must still be answered one after the other.
    agent = f"GET /one HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode()
    api = b"GET /api HTTP/1.1\r\nHost: localhost\r\n\r\n"
    last = f"GET /three HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode()
    received = _exchange_raw(router.port, agent + api + last)
    statuses = re.findall(rb"HTTP/1.1 (\d+) ", received)
    assert statuses == [b"200", b"418", b"200"]
    first, second, third = (received.index(part) for part in (b"GET /one", b"api", b"GET /three"))
    assert first < second < third
    assert received.count(b"x-shipyard-version: v1") == 2
    assert b"connection: close" in received.split(b"GET /one", 1)[1]


def test_small_uploads_and_http_1_0_clients_are_served(
    router: RouterServer, client: httpx.Client
) -> None:
    small = client.post(
        router.url("/chat"), content=b'{"a": 1}', headers={"content-type": "application/json"}
    )
    assert small.status_code == 201
    assert small.content == b'application/json|{"a": 1}'
    # HTTP/1.0 without keep-alive: one answer, then the router closes the connection.
    received = _exchange_raw(router.port, f"GET /old HTTP/1.0\r\nHost: {HOST}\r\n\r\n".encode())
    assert received.startswith(b"HTTP/1.1 200 ")
    assert received.endswith(b"\r\n\r\nGET /old")
    assert b"connection: close" in received


def test_malformed_requests_are_a_400_not_a_traceback(router: RouterServer) -> None:
    received = _exchange_raw(router.port, b"GET / HTTP/1.1\r\nHost " + HOST.encode() + b"\r\n\r\n")
    assert received.startswith(b"HTTP/1.1 400 ")
    bad_length = f"POST / HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: x\r\n\r\n".encode()
    assert _exchange_raw(router.port, bad_length).startswith(b"HTTP/1.1 400 ")


def test_a_callers_trace_reaches_the_agent_continued(table: route_table.RouteTable) -> None:
    traced = tracing.Tracing(None, sample_ratio=1.0)
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    try:
        with (
            RouterServer(table, traced) as server,
            httpx.Client(headers={"host": HOST}, timeout=WAIT, trust_env=False) as http,
        ):
            caller = f"00-{trace_id}-00f067aa0ba902b7-01"
            sent = http.get(server.url("/traced"), headers={"traceparent": caller})
            assert sent.text == "GET /traced"
            received = sent.headers["x-traceparent"]
            assert received.startswith(f"00-{trace_id}-")
            assert received != caller  # the router's own span is the agent's parent
            started = http.get(server.url("/new")).headers["x-traceparent"]
            assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-01", started)
            records = traced.recent.of("echo", "production")
            assert (records[0].path, records[0].status, records[0].trace_id) == (
                "/traced",
                200,
                trace_id,
            )
            assert len(records) == 2
    finally:
        traced.shutdown()


def test_a_request_on_a_connection_the_agent_drops_is_retried_on_a_fresh_one(
    agent: Agent, router: RouterServer, client: httpx.Client
) -> None:
    for index in range(3):
        assert client.get(router.url("/then-drop")).content == b"ok"
        assert client.get(router.url(f"/after/{index}")).text == f"GET /after/{index}"
    assert agent.connections == 4  # the first, and one fresh one per dropped request


# Through serve's protocol (no forwarding header) and through ASGI (uvicorn's proxy-headers
# middleware has one to apply): the two paths an agent request can take.
PATHS = pytest.mark.parametrize(
    "extra", [{}, {"x-forwarded-for": "10.0.0.1"}], ids=["protocol", "asgi"]
)


@PATHS
def test_an_agent_that_never_answers_is_a_504_after_the_agent_timeout(
    agent: Agent, table: route_table.RouteTable, client: httpx.Client, extra: dict[str, str]
) -> None:
    with RouterServer(table, agent_timeout=0.5) as router:
        response = client.get(router.url("/silent"), headers=extra)
        assert response.status_code == 504
        assert "agent echo in production is not answering" in response.json()["error"]
        assert "sent nothing for 0.5 s" in response.json()["detail"]
        assert response.headers["x-shipyard-version"] == "v1"
        agent.wake_silent.set()
        # The router is unharmed: the next request on a fresh connection is answered.
        assert client.get(router.url("/after"), headers=extra).text == "GET /after"


@PATHS
def test_a_stream_that_goes_silent_is_cut_and_the_client_sees_it_broken(
    agent: Agent, table: route_table.RouteTable, client: httpx.Client, extra: dict[str, str]
) -> None:
    with (
        RouterServer(table, agent_timeout=0.5) as router,
        client.stream("GET", router.url("/stall"), headers=extra) as response,
    ):
        pieces = response.iter_raw()
        assert next(pieces) == b"data: first\n\n"
        # Not a clean end: the router must not write the last chunk for the agent.
        with pytest.raises(httpx.RemoteProtocolError):
            b"".join(pieces)


def test_a_slow_answer_within_the_agent_timeout_is_served(
    agent: Agent, router: RouterServer, client: httpx.Client
) -> None:
    # The default wait is long (minutes: a model's answer can take that long to start);
    # a reply that takes a little while is not cut.
    threading.Timer(1.5, agent.release_second_event.set).start()
    with client.stream("GET", router.url("/events")) as response:
        assert b"".join(response.iter_raw()) == b"data: first\n\ndata: second\n\n"


@PATHS
def test_a_silent_agent_on_a_reused_connection_gets_the_request_once(
    agent: Agent, table: route_table.RouteTable, client: httpx.Client, extra: dict[str, str]
) -> None:
    with RouterServer(table, agent_timeout=0.5) as router:
        assert client.get(router.url("/warm"), headers=extra).status_code == 200  # pooled
        assert client.get(router.url("/silent"), headers=extra).status_code == 504
        agent.wake_silent.set()
        assert agent.silent_requests == 1  # a request the agent took is never sent twice


@PATHS
def test_a_client_leaving_before_the_reply_hangs_up_on_the_agent_too(
    agent: Agent, router: RouterServer, extra: dict[str, str]
) -> None:
    # The router's wait for a reply is minutes long; a client that gives up must not
    # leave a connection to the agent behind for all that time.
    for _ in range(2):  # once on a fresh connection to the agent, once on a pooled one
        agent.silent_left.clear()
        with socket.create_connection(("127.0.0.1", router.port)) as raw:
            headers = "".join(f"{name}: {value}\r\n" for name, value in extra.items())
            raw.sendall(f"GET /silent HTTP/1.1\r\nhost: {HOST}\r\n{headers}\r\n".encode())
            wait_until(lambda: agent.silent_requests > 0, "the agent to take the request")
        assert agent.silent_left.wait(WAIT), "the router kept waiting for an abandoned request"
        agent.silent_requests = 0
        assert httpx.get(router.url("/warm"), headers={"host": HOST, **extra}).status_code == 200


@PATHS
def test_a_head_with_no_body_to_follow_is_a_504_not_a_cut_200(
    agent: Agent, table: route_table.RouteTable, client: httpx.Client, extra: dict[str, str]
) -> None:
    with RouterServer(table, agent_timeout=0.5) as router:
        response = client.get(router.url("/head-then-nothing"), headers=extra)
        assert response.status_code == 504
        assert "sent nothing for 0.5 s" in response.json()["detail"]


@PATHS
def test_a_post_the_agent_took_and_dropped_is_a_502_not_sent_again(
    agent: Agent, router: RouterServer, client: httpx.Client, extra: dict[str, str]
) -> None:
    assert client.get(router.url("/then-drop"), headers=extra).content == b"ok"
    response = client.post(router.url("/orders"), content=b"one order", headers=extra)
    assert response.status_code == 502
    assert agent.posts_taken == 1  # a POST is never replayed on a fresh connection


def test_a_client_leaving_a_stream_is_not_logged_as_the_agents_fault(
    agent: Agent, router: RouterServer, client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING), client.stream("GET", router.url("/forever")) as response:
        assert next(response.iter_raw()).startswith(b"data: tick")
    assert agent.stream_closed.wait(WAIT)
    time.sleep(0.5)  # the router's side of the stream ends after the client's
    assert not [r for r in caplog.records if "broke off" in r.getMessage()]
