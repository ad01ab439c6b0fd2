"""Request traces: the router starts or continues a W3C trace per agent request, passes it
on to the agent, exports a span per request over OTLP/HTTP, and keeps the newest requests
for `shipyard requests`.

A real `shipyard serve` with `--otlp-endpoint` pointing at a real OTLP/HTTP receiver on
loopback (`tests/fakes/otlp.py`, decoding the protobuf with opentelemetry-proto), a real
agent process echoing what it received, and the real CLI.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from controller.api import proxy, tracing
from controller.cli.main import cli
from controller.errors import ShipyardError
from tests.fakes import otlp
from tests.gitrepos import Upstream
from tests.integration import echo_agent
from tests.integration.controller_harness import Shipyard, free_port, manifest, seed, wait_for

SHIPYARD = Path(sys.executable).parent / "shipyard"
SERVER_SPAN = 2  # SPAN_KIND_SERVER in OTLP
STATUS_ERROR = 2


@dataclass
class World:
    shipyard: Shipyard
    receiver: otlp.OtlpReceiver
    version: str

    def call(
        self, path: str, headers: dict[str, str] | None = None, method: str = "GET"
    ) -> httpx.Response:
        host = {"host": f"bot--production.localhost:{self.shipyard.port}"}
        return self.shipyard.http.request(
            method, self.shipyard.api(path), headers={**host, **(headers or {})}
        )

    def span(self, trace_id: str) -> otlp.ReceivedSpan:
        def find() -> otlp.ReceivedSpan | None:
            return next((s for s in self.receiver.received() if s.trace_id == trace_id), None)

        return wait_for(find, what=f"the span of trace {trace_id}")


def start_echo_bot(tmp_path: Path, *extra: str) -> tuple[Shipyard, str]:
    upstream = Upstream(tmp_path / "git")
    seed(upstream)
    sha = upstream.commit(
        {
            "agent/echo.py": echo_agent.SOURCE,
            "agents/bot.yaml": manifest("bot", command='["python3", "agent/echo.py"]'),
        },
        message="Add the echo bot",
        branch="main",
    )
    upstream.push("main")
    shipyard = Shipyard(upstream.bare, tmp_path / "state", *extra).start()
    version = shipyard.wait_desired("bot", "production", sha)
    wait_for(
        lambda: shipyard.agent("bot", "production", "/").status_code == 200,
        what="the echo bot to serve",
    )
    return shipyard, version


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with pytest.MonkeyPatch.context() as patch, otlp.running() as receiver:
        # The SDK's standard knob: export batches every 100 ms instead of every 5 s.
        patch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
        shipyard, version = start_echo_bot(
            tmp_path_factory.mktemp("traces"), "--otlp-endpoint", receiver.endpoint
        )
        try:
            yield World(shipyard, receiver, version)
        finally:
            shipyard.close()


def test_a_callers_trace_is_continued_and_passed_on_to_the_agent(world: World) -> None:
    trace_id, parent_id = secrets.token_hex(16), secrets.token_hex(8)
    response = world.call(
        "/orders/12345?api_key=hunter2",
        {"traceparent": f"00-{trace_id}-{parent_id}-01", "user-agent": "trace-test/1.0"},
    )
    assert response.status_code == 200
    seen = response.json()["headers"]["traceparent"]
    version, seen_trace, seen_span, flags = seen.split("-")
    assert (version, seen_trace, flags) == ("00", trace_id, "01")
    assert seen_span != parent_id  # the agent's parent is the router's span

    span = world.span(trace_id)
    assert span.span_id == seen_span
    assert span.parent_span_id == parent_id
    assert span.kind == SERVER_SPAN
    assert span.name == "GET /orders/{id}"
    assert span.resource["service.name"] == "bot"
    assert span.resource["deployment.environment.name"] == "production"
    assert span.scope == "shipyard.router"
    attributes = span.attributes
    assert attributes["http.request.method"] == "GET"
    assert attributes["http.route"] == "/orders/{id}"
    assert attributes["url.path"] == "/orders/12345"
    assert attributes["http.response.status_code"] == 200
    assert attributes["server.address"] == "bot--production.localhost"
    assert attributes["user_agent.original"] == "trace-test/1.0"
    assert attributes["shipyard.agent"] == "bot"
    assert attributes["shipyard.environment"] == "production"
    assert attributes["shipyard.version"] == world.version
    assert len(str(attributes["shipyard.commit"])) == 40
    assert attributes["http.response.body.size"] == len(response.content)
    assert span.status_code != STATUS_ERROR
    assert span.start_ns < span.end_ns
    assert "hunter2" not in json.dumps(attributes)  # the query string is never exported


def test_a_request_without_a_trace_starts_one(world: World) -> None:
    response = world.call("/chat", method="POST")
    _, trace_id, span_id, _ = response.json()["headers"]["traceparent"].split("-")
    span = world.span(trace_id)
    assert span.span_id == span_id
    assert span.parent_span_id == ""
    assert span.name == "POST /chat"


def test_a_server_error_marks_the_span_failed(world: World) -> None:
    response = world.call("/status/503")
    assert response.status_code == 503
    _, trace_id, _, _ = response.json()["headers"]["traceparent"].split("-")
    span = world.span(trace_id)
    assert span.status_code == STATUS_ERROR
    assert span.attributes["error.type"] == "503"
    not_found = world.call("/status/404")
    _, trace_404, _, _ = not_found.json()["headers"]["traceparent"].split("-")
    assert world.span(trace_404).status_code != STATUS_ERROR  # a client's error is not ours


def test_requests_lists_the_newest_requests_with_their_trace_ids(world: World) -> None:
    response = world.call("/invoices/777?secret=s3")
    _, trace_id, _, _ = response.json()["headers"]["traceparent"].split("-")
    server = world.shipyard.api("")
    table = subprocess.run(
        [str(SHIPYARD), "requests", "bot", "-e", "production", "--server", server],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert table[0].split() == ["TIME", "METHOD", "PATH", "STATUS", "LATENCY", "TRACE", "ID"]
    mine = [line for line in table if trace_id in line]
    assert len(mine) == 1
    time_, method, path, status, latency, traced = mine[0].split()
    assert (method, path, status, traced) == ("GET", "/invoices/777", "200", trace_id)
    assert time_.endswith("Z")
    assert latency.endswith(("ms", "s"))
    assert "s3" not in "\n".join(table)

    listed = subprocess.run(
        [str(SHIPYARD), "requests", "bot", "-e", "production", "-o", "json", "--server", server],
        capture_output=True,
        text=True,
        check=True,
    )
    items = json.loads(listed.stdout)["items"]
    item = next(item for item in items if item["traceId"] == trace_id)
    assert item["version"] == world.version
    assert item["status"] == 200
    assert item["latencySeconds"] > 0
    missing = subprocess.run(
        [str(SHIPYARD), "requests", "nobody", "-e", "production", "--server", server],
        capture_output=True,
        text=True,
        check=False,
    )
    assert missing.returncode == 1
    assert "nobody" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_an_unreachable_collector_costs_the_requests_nothing(tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    shipyard, _ = start_echo_bot(tmp_path, "--otlp-endpoint", closed)
    try:
        for number in range(5):
            response = shipyard.agent("bot", "production", f"/ping/{number}")
            assert response.status_code == 200
        listed = shipyard.http.get(
            shipyard.api("/api/v1/environments/production/agents/bot/requests")
        ).json()
        paths = [item["path"] for item in listed["items"]]
        assert [f"/ping/{number}" for number in range(5)] == [
            p for p in paths if p.startswith("/ping/")
        ]
        assert listed["exporting"] is True
    finally:
        shipyard.close()


def test_a_malformed_endpoint_is_refused_at_start() -> None:
    result = subprocess.run(
        [str(SHIPYARD), "serve", "--repo", "/nonexistent", "--otlp-endpoint", "collector:4318"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 2
    assert "--otlp-endpoint" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("path", "route"),
    [
        ("/", "/"),
        ("/chat", "/chat"),
        ("/orders/12345", "/orders/{id}"),
        ("/users/3f2a9c1e-0b7d-4c1e-9a55-2b1c0d9e8f7a/messages", "/users/{id}/messages"),
        ("/a/b/c/d/e/f", "/a/b/c/d/*"),
        ("/blobs/" + "ab" * 20, "/blobs/{id}"),
    ],
)
def test_routes_keep_span_names_few(path: str, route: str) -> None:
    assert tracing.route_of(path) == route


def test_otlp_endpoint_is_a_base_url_as_in_the_otel_variables() -> None:
    assert tracing.otlp_traces_url("http://127.0.0.1:4318") == "http://127.0.0.1:4318/v1/traces"
    assert tracing.otlp_traces_url("http://c:4318/v1/traces") == "http://c:4318/v1/traces"
    with pytest.raises(ShipyardError, match="not an http"):
        tracing.otlp_traces_url("grpc://c:4317")


def test_recent_requests_are_bounded_per_version_and_in_total() -> None:
    recent = tracing.Recent(per_version=3, versions=2)

    def record(version: str, number: int) -> tracing.RequestRecord:
        return tracing.RequestRecord(
            float(number), "a", "e", version, "GET", f"/{number}", 200, 0.01, "t", "s", None, 0
        )

    for number in range(5):
        recent.add(record("v1", number))
    assert [r.path for r in recent.of("a", "e")] == ["/2", "/3", "/4"]
    recent.add(record("v2", 10))
    recent.add(record("v3", 11))
    assert recent.of("a", "e", "v1") == []  # the oldest version fell off
    assert [r.path for r in recent.of("a", "e", limit=1)] == ["/11"]


@pytest.mark.parametrize(
    ("command", "flag"),
    [("requests", "--version"), ("replay", "--allow-production"), ("logs", "--previous")],
)
def test_new_commands_and_flags_have_help_with_examples(command: str, flag: str) -> None:
    result = CliRunner().invoke(cli, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Examples:" in result.output
    assert flag in result.output


def _traced_requests(
    traced: tracing.Tracing, headers: list[list[tuple[bytes, bytes]]]
) -> list[str]:
    """Send one request per header list through `traced` (an agent answering 200 in
    process) and return the `traceparent` each request passed on."""
    seen: list[str] = []
    upstream = proxy.Upstream("bot", "production", "v1", 1)

    async def agent(_: Any, scope: Any, receive: Any, send: Any) -> None:
        seen.append(dict(scope["headers"])[b"traceparent"].decode())
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok", "more_body": False})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(_: Any) -> None:
        pass

    async def requests() -> None:
        for number, extra in enumerate(headers):
            scope = {"type": "http", "method": "GET", "path": f"/n/{number}",
                     "query_string": b"", "headers": [(b"host", b"bot"), *extra]}  # fmt: skip
            await traced.traced(upstream, scope, receive, send, agent)

    asyncio.run(requests())
    return seen


def test_head_sampling_follows_the_parent_and_else_the_ratio() -> None:
    sampled_parent = "00-" + "a" * 32 + "-" + "b" * 16 + "-01"
    unsampled_parent = "00-" + "c" * 32 + "-" + "d" * 16 + "-00"
    with otlp.running() as receiver:
        traced = tracing.Tracing(receiver.endpoint, sample_ratio=0.0)
        try:
            seen = _traced_requests(
                traced,
                [
                    [],  # a new trace: the ratio (0) decides
                    [(b"traceparent", sampled_parent.encode())],
                    [(b"traceparent", unsampled_parent.encode())],
                    [(b"traceparent", b"ff-" + b"a" * 32 + b"-" + b"b" * 16 + b"-01")],  # invalid
                ],
            )
            traced.flush()
            exported = {span.trace_id for span in receiver.received()}
        finally:
            traced.shutdown()
    new, continued, unsampled, invalid = (value.split("-") for value in seen)
    assert [new[3], continued[3], unsampled[3], invalid[3]] == ["00", "01", "00", "00"]
    assert [continued[1], unsampled[1]] == ["a" * 32, "c" * 32]
    assert invalid[1] != "a" * 32  # not continued: a new (and, at ratio 0, unsampled) trace
    assert exported == {"a" * 32}  # only the trace its caller sampled
    listed = traced.recent.of("bot", "production")
    everything = [value[1] for value in (new, continued, unsampled, invalid)]
    assert [record.trace_id for record in listed] == everything


def test_a_sample_ratio_exports_about_that_share_of_new_traces() -> None:
    with otlp.running() as receiver:
        traced = tracing.Tracing(receiver.endpoint, sample_ratio=0.5)
        try:
            seen = _traced_requests(traced, [[] for _ in range(1000)])
            traced.flush()
            exported = {span.trace_id for span in receiver.received()}
        finally:
            traced.shutdown()
    flagged = {value.split("-")[1] for value in seen if value.endswith("-01")}
    assert exported == flagged  # exported exactly when the agent was told "sampled"
    assert 350 < len(flagged) < 650  # binomial(1000, 0.5): far outside is a broken sampler
    assert len(traced.recent.of("bot", "production")) == KEPT_LISTED


KEPT_LISTED = tracing.KEPT_PER_VERSION  # every request is listed, sampled or not (newest 200)


def test_a_sample_ratio_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(ShipyardError, match="from 0 to 1"):
        tracing.Tracing(None, sample_ratio=1.5)
    result = CliRunner().invoke(
        cli, ["serve", "--repo", "/nonexistent", "--trace-sample-ratio", "2"]
    )
    assert result.exit_code == 2
    assert "--trace-sample-ratio" in result.output


def test_resource_attributes_from_the_otel_variable_reach_the_collector(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "team=support,region=eu")
    with otlp.running() as receiver:
        traced = tracing.Tracing(receiver.endpoint)
        try:
            _traced_requests(traced, [[]])
            traced.flush()
            (span,) = receiver.received()
        finally:
            traced.shutdown()
    assert span.resource["team"] == "support"
    assert span.resource["region"] == "eu"
    assert span.resource["service.name"] == "bot"  # the agent, whatever the variables say
    assert span.attributes["http.response.status_code"] == 200


def test_a_collector_that_refuses_batches_loses_spans_not_requests() -> None:
    """A 400 is not retried (the batch would be refused again): the spans are counted as
    dropped, and every request is still answered and listed."""

    class Refusing(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", "0")))
            self.send_response(400)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    collector = ThreadingHTTPServer(("127.0.0.1", 0), Refusing)
    thread = threading.Thread(target=collector.serve_forever, daemon=True)
    thread.start()
    traced = tracing.Tracing(f"http://127.0.0.1:{collector.server_address[1]}")
    try:
        seen = _traced_requests(traced, [[] for _ in range(20)])
        traced.flush()
        assert len(seen) == 20
        assert len(traced.recent.of("bot", "production")) == 20
        assert traced.spans_dropped == 20
    finally:
        traced.shutdown()
        collector.shutdown()
        collector.server_close()
