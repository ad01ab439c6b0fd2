"""Benchmark the router's throughput with tracing and with recording, as ratios to neither.

Why this exists: every agent request passes the router, so what tracing (a span per
request, exported over OTLP/HTTP) and recording (a copy of request and response into
SQLite) cost shows in every answer. Goals: at least 0.9 of the plain router's throughput
with tracing, 0.8 with recording.

    python bench/router_observability.py [--requests 600] [--concurrency 16] [--rounds 15] [--json]

The router (`controller.api.proxy.Router`) runs in this process and is called as an ASGI
app, so the measured cost is the router's own (no HTTP server in front of it, which
would only dilute the ratios). Its upstream is a real HTTP agent in a subprocess on
loopback (keep-alive, a small JSON answer to a 1 KiB POST), and the OTLP collector a real
HTTP receiver in another subprocess. The three setups run in interleaved rounds, so a
noisy neighbour slows them alike; each setup's median round counts:

- off: no tracing, no recording (the router with metrics, as before);
- default: what `shipyard serve` runs without `--otlp-endpoint`: trace context made and
  passed on, each request kept for `shipyard requests`, nothing exported (information:
  the goals are ratios to off);
- tracing: a server span per request, exported in batches over OTLP/HTTP;
- recording: tracing plus recording every request (`sampleRate: 1`) into SQLite.

Spans are exported and records written off the request path; each round waits for that
deferred work (`Tracing.flush`) so that its CPU counts in the round that caused it.
`--sample-ratio` (as `serve --trace-sample-ratio`) and `--record-sample-rate` (the
manifest's `sampleRate`) show the two levers.

`--served` puts each setup's router on the protocol and event loop `shipyard serve` runs
(uvicorn's httptools parser with agent requests served below ASGI,
controller/api/agent_protocol.py; uvloop where installed) in a process of its own, and
drives it with `wrk` (the same 1 KiB POST, 8 connections); the figure is then the router
process's CPU per request, from /proc.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn

from controller.api import connections, proxy, recording, tracing
from controller.cli import event_loop
from controller.metrics.collector import Metrics
from controller.specs import model
from controller.store.recordings import Recordings

# A minimal keep-alive HTTP/1.1 agent on asyncio: fast enough that the router, not the
# agent, is what the rounds measure.
AGENT = r"""
import asyncio, sys

BODY = b'{"answer": "' + b"x" * 200 + b'"}'
RESPONSE = (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
            + str(len(BODY)).encode() + b"\r\n\r\n" + BODY)

async def serve(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if length:
                await reader.readexactly(length)
            writer.write(RESPONSE)
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()

async def main():
    server = await asyncio.start_server(serve, "127.0.0.1", int(sys.argv[1]), backlog=512)
    await server.serve_forever()

asyncio.run(main())
"""

COLLECTOR = r"""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass

ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""

HOST = "bot--production.localhost"
PAYLOAD = json.dumps({"message": "m" * 1000}).encode()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def serving(source: str) -> Iterator[int]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-c", source, str(port)])
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait()


async def no_api(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("the benchmark only sends agent requests")


def router(port: int, traced: tracing.Tracing | None) -> proxy.Router:
    upstream = proxy.Upstream("bot", "production", "v1", port)
    table = {HOST: upstream}
    return proxy.Router(
        no_api, lambda: table, proxy.host_pattern("http://{agent}--{env}.localhost/"),
        metrics=Metrics(), tracing=traced,
    )  # fmt: skip


async def one_request(app: proxy.Router) -> int:
    status = 0
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if delivered:
            await asyncio.sleep(3600)
        delivered = True
        return {"type": "http.request", "body": PAYLOAD, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/chat",
        "raw_path": b"/chat",
        "query_string": b"",
        "scheme": "http",
        "client": ("127.0.0.1", 50000),
        "headers": [
            (b"host", HOST.encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(PAYLOAD)).encode()),
            (b"user-agent", b"bench/1"),
        ],
    }
    await app(scope, receive, send)
    return status


async def round_of(app: proxy.Router, requests: int, concurrency: int) -> tuple[float, float]:
    """Requests per second of wall-clock time, and per second of this process's CPU time
    (all its threads: the exporter's and the recorder's writer included), for `requests`
    requests, `concurrency` at a time, including the deferred work they caused (spans
    drained, encoded and exported; records written)."""
    remaining = requests

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            status = await one_request(app)
            if status != 200:
                raise RuntimeError(f"the router answered {status}")

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    if app.tracing is not None:
        # Spans are exported and records written off the request path: the round counts
        # that work too, or it would bill the next setup's round.
        app.tracing.flush()
    return requests / (time.perf_counter() - started), requests / (time.process_time() - cpu)


async def measure(arguments: argparse.Namespace) -> dict[str, Any]:
    with (
        serving(AGENT) as agent_port,
        serving(COLLECTOR) as collector_port,
        tempfile.TemporaryDirectory() as state,
    ):
        endpoint = f"http://127.0.0.1:{collector_port}"
        policy = recording.Policy(
            model.RecordSettings(enabled=True, sample_rate=arguments.record_sample_rate)
        )
        recorder = recording.Recorder(
            Recordings(Path(state) / "db.sqlite", enforce_every_seconds=1.0), lambda *_: policy
        )
        setups: dict[str, proxy.Router] = {
            "off": router(agent_port, None),
            "default": router(agent_port, tracing.Tracing(None)),
            "tracing": router(
                agent_port, tracing.Tracing(endpoint, sample_ratio=arguments.sample_ratio)
            ),
            "recording": router(
                agent_port,
                tracing.Tracing(endpoint, inner=recorder, sample_ratio=arguments.sample_ratio),
            ),
        }
        for app in setups.values():  # warm up: connections, imports, first spans
            await round_of(app, 200, arguments.concurrency)
        rates: dict[str, list[float]] = {name: [] for name in setups}
        per_cpu: dict[str, list[float]] = {name: [] for name in setups}
        for _ in range(arguments.rounds):
            for name, app in setups.items():
                wall, cpu = await round_of(app, arguments.requests, arguments.concurrency)
                rates[name].append(wall)
                per_cpu[name].append(cpu)
        recorder.flush()
        recorded = len(recorder.recordings.list("bot", "production", last=1000))
        for app in setups.values():
            await app.aclose()
            if app.tracing is not None:
                app.tracing.shutdown()  # the recording one closes the recorder too
    median = {name: statistics.median(values) for name, values in rates.items()}
    cpu = {name: statistics.median(values) for name, values in per_cpu.items()}
    return {
        "requests_per_round": arguments.requests,
        "concurrency": arguments.concurrency,
        "rounds": arguments.rounds,
        "requests_per_second": {name: round(value, 1) for name, value in median.items()},
        "tracing_ratio": round(median["tracing"] / median["off"], 3),
        "recording_ratio": round(median["recording"] / median["off"], 3),
        "requests_per_cpu_second": {name: round(value, 1) for name, value in cpu.items()},
        "tracing_cpu_ratio": round(cpu["tracing"] / cpu["off"], 3),
        "recording_cpu_ratio": round(cpu["recording"] / cpu["off"], 3),
        "export_cpu_ratio_to_default": round(cpu["tracing"] / cpu["default"], 3),
        "recorded_kept": recorded,
        "dropped_records": recorder.dropped,
    }


def recorder_of(state: Path, sample_rate: float) -> recording.Recorder:
    policy = recording.Policy(model.RecordSettings(enabled=True, sample_rate=sample_rate))
    return recording.Recorder(
        Recordings(state / "db.sqlite", enforce_every_seconds=1.0), lambda *_: policy
    )


def serve_router(port: int, agent_port: int, setup: str, endpoint: str, ratios: str) -> None:
    """One setup's router on `serve`'s protocol (a child process of `--served`)."""
    sample_ratio, record_sample_rate = (float(value) for value in ratios.split(","))
    traced = None
    with tempfile.TemporaryDirectory() as state:
        if setup == "default":
            traced = tracing.Tracing(None)
        elif setup != "off":
            inner = recorder_of(Path(state), record_sample_rate) if setup == "recording" else None
            traced = tracing.Tracing(endpoint, inner=inner, sample_ratio=sample_ratio)
        app = router(agent_port, traced)
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            lifespan="off",
            log_level="warning",
            access_log=False,
            server_header=False,
            date_header=False,
            http=connections.protocol_with_header_timeout(60.0, app),
        )
        # On the loop serve picks (uvloop where installed), as the router really runs.
        event_loop.run(uvicorn.Server(config).serve())


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk_round(port: int, seconds: float, script: Path, pid: int) -> float:
    """The router's CPU (µs) per request over one `wrk` run."""
    before = cpu_seconds(pid)
    output = subprocess.run(
        ["wrk", "-t", "1", "-c", "8", "-d", f"{seconds:g}s", "-s", str(script),
         f"http://127.0.0.1:{port}/chat"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    if "Non-2xx" in output or "Socket errors" in output:
        raise SystemExit(f"requests failed:\n{output}")
    found = re.search(r"(\d+) requests in", output)
    if found is None:
        raise SystemExit(f"could not read wrk's output:\n{output}")
    return (cpu_seconds(pid) - before) / int(found.group(1)) * 1e6


def served(arguments: argparse.Namespace) -> dict[str, float]:
    """Median router CPU per request for each setup on `serve`'s protocol."""
    setups = ("off", "default", "tracing", "recording")
    ratios = f"{arguments.sample_ratio},{arguments.record_sample_rate}"
    with (
        serving(AGENT) as agent_port,
        serving(COLLECTOR) as collector_port,
        tempfile.TemporaryDirectory() as scratch,
    ):
        script = Path(scratch) / "post.lua"
        script.write_text(
            f'wrk.method = "POST"\nwrk.body = {json.dumps(PAYLOAD.decode())}\n'
            f'wrk.headers["Content-Type"] = "application/json"\n'
            f'wrk.headers["Host"] = "{HOST}"\n'
        )
        routers = {}
        for setup in setups:
            port = free_port()
            routers[setup] = (port, subprocess.Popen([
                sys.executable, __file__, "--serve-router", str(port), str(agent_port), setup,
                f"http://127.0.0.1:{collector_port}", ratios,
            ]))  # fmt: skip
        try:
            for port, _ in routers.values():
                wait_port(port)
            for port, process in routers.values():  # warm up
                wrk_round(port, 1, script, process.pid)
            runs: dict[str, list[float]] = {setup: [] for setup in setups}
            for index in range(arguments.rounds):
                order = setups if index % 2 == 0 else setups[::-1]
                for setup in order:
                    port, process = routers[setup]
                    runs[setup].append(wrk_round(port, arguments.seconds, script, process.pid))
        finally:
            for _, process in routers.values():
                process.terminate()
                process.wait(10)
    return {setup: statistics.median(values) for setup, values in runs.items()}


def wait_port(port: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument(
        "--sample-ratio", type=float, default=1.0, help="share of new traces exported (as serve's)"
    )
    parser.add_argument(
        "--record-sample-rate",
        type=float,
        default=1.0,
        help="the manifest's spec.observability.record.sampleRate for the recording setup",
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--served", action="store_true", help="on serve's protocol, driven by wrk (needs wrk)"
    )
    parser.add_argument("--seconds", type=float, default=3.0, help="per wrk round (--served)")
    parser.add_argument("--serve-router", nargs=5, help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    if arguments.serve_router:
        port, agent_port, setup, endpoint, ratios = arguments.serve_router
        serve_router(int(port), int(agent_port), setup, endpoint, ratios)
        return 0
    if arguments.served:
        cpu_us = served(arguments)
        if arguments.json:
            print(json.dumps({"cpu_us_per_request": cpu_us}, indent=2))
            return 0
        print(
            f"router on serve's protocol, wrk -c 8, {arguments.rounds} rounds of "
            f"{arguments.seconds:g} s (median), router CPU per request:"
        )
        for name, value in cpu_us.items():
            print(f"  {name:<10} {value:>6.1f} µs   {cpu_us['off'] / value:.2f} of off per CPU")
        return 0
    result = asyncio.run(measure(arguments))
    if arguments.json:
        print(json.dumps(result, indent=2))
        return 0
    rates = result["requests_per_second"]
    print(
        f"router, {arguments.requests} requests x {arguments.rounds} rounds, "
        f"{arguments.concurrency} concurrent (median round), "
        f"traces sampled for export: {arguments.sample_ratio:g}, "
        f"requests recorded: {arguments.record_sample_rate:g}:"
    )
    cpu = result["requests_per_cpu_second"]
    print(f"  {'':<10} {'req/s':>8} {'req/CPU-s':>10}")
    for name in ("off", "default", "tracing", "recording"):
        print(f"  {name:<10} {rates[name]:>8.0f} {cpu[name]:>10.0f}")
    print(
        f"  tracing / off:   {result['tracing_ratio']:.2f} wall, "
        f"{result['tracing_cpu_ratio']:.2f} per CPU  (goal >= 0.9)"
    )
    print(
        f"  recording / off: {result['recording_ratio']:.2f} wall, "
        f"{result['recording_cpu_ratio']:.2f} per CPU  (goal >= 0.8)"
    )
    print(
        f"  tracing / default (the cost of --otlp-endpoint alone): "
        f"{result['export_cpu_ratio_to_default']:.2f} per CPU"
    )
    print(f"  recorded rows kept: {result['recorded_kept']}, dropped: {result['dropped_records']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
