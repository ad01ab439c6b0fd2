"""Benchmark the built-in router: its host lookup at any size, its throughput vs direct.

Why this exists: every request to a local agent passes through Shipyard's router, so the
router's own cost is added to every agent call. Two goals (issue: performance at scale):
the host → agent lookup stays flat from 1 to 50,000 routes, and the router serves at
least 0.7x the requests per second of calling the agent directly (aim 0.9x).

    apt-get install -y wrk     # benchmarks are run by hand, so CI does not install it
    python bench/router.py [--routes 1 1000 50000] [--seconds 5] [--rounds 3] [--json]

1. Lookup: a route table of N routes filled the way `shipyard serve` fills it (one
   switch per agent slot), then the router's own lookup timed for hosts spread over the
   table; printed side by side with rebuilding the whole map, which is what each request
   cost before the table existed.
2. Throughput: the example agent (examples/agents-repo/agent/server.py) on loopback, and
   the production `Router` under the same server stack `shipyard serve` runs, routing one
   host to it. `wrk -c 8` (HTTP/1.1 keep-alive; `ab -k` speaks HTTP/1.0 keep-alive,
   which the example agent does not echo) runs against the agent directly and through
   the router, alternating, `--rounds` times each; medians of requests/s and p50 are compared.
   `--stacks`: `serve` (agent requests below ASGI, controller/api/agent_protocol.py, on
   uvloop as `shipyard serve` runs it where uvloop is installed), `serve-asyncio` (the
   same on asyncio's own loop), `serve-asgi` (every request through ASGI: serve before
   agent_protocol), and uvicorn's own `httptools` and `h11` protocols (all but `serve`
   on asyncio's loop).
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
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvicorn

from controller.api import connections, proxy, route_table
from controller.cli import event_loop
from controller.metrics.collector import Metrics
from controller.targets.local.target import Serving

ROOT = Path(__file__).resolve().parent.parent
AGENT = ROOT / "examples" / "agents-repo" / "agent" / "server.py"
TEMPLATE = "http://{agent}--{env}.localhost:8080/"
HOST = "bench--production.localhost"


def _url_of(agent: str, environment: str) -> str:
    return TEMPLATE.format(agent=agent, env=environment)


def _servings(count: int) -> list[Serving]:
    environments = max(1, count // 1000)
    per_environment = -(-count // environments)
    return [
        Serving(
            f"agent-{index % per_environment}", f"env-{index // per_environment}", "v1", 9000, ""
        )
        for index in range(count)
    ]


def lookup(counts: list[int]) -> list[dict[str, Any]]:
    router = proxy.Router(_not_found, dict, proxy.host_pattern(TEMPLATE))
    results = []
    for count in counts:
        servings = _servings(count)
        table = route_table.RouteTable(_url_of)
        for serving in servings:
            table.switch(serving.environment, serving.agent, serving)
        router.upstreams = lambda hosts=table.hosts: hosts
        hosts = [proxy.host_of(_url_of(s.agent, s.environment)) for s in servings]
        # Scopes as the server hands them over: the Host header as bytes, with its port.
        probes = [
            {"headers": [(b"host", f"{hosts[(index * 7919) % len(hosts)]}:8080".encode())]}
            for index in range(100_000)
        ]
        best = float("inf")
        for _ in range(5):
            started = time.perf_counter()
            for scope in probes:
                if router.route(scope) is None:
                    raise SystemExit("a routed host was not found")
            best = min(best, (time.perf_counter() - started) / len(probes))
        started = time.perf_counter()
        route_table.RouteTable(_url_of, servings)
        rebuild = time.perf_counter() - started
        results.append({"routes": count, "lookup_ns": best * 1e9, "rebuild_ms": rebuild * 1e3})
    return results


async def _not_found(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 404, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_port(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit(f"nothing listens on port {port}")


STACKS: dict[str, Callable[[proxy.Router], type[asyncio.Protocol] | str]] = {
    # What `shipyard serve` runs: uvicorn's httptools protocol with the header deadline
    # and coalesced writes, agent requests served on the protocol itself, below ASGI
    # (controller/api/connections.py, agent_protocol.py), on uvloop where installed.
    "serve": lambda router: connections.protocol_with_header_timeout(60.0, router),
    # The same on asyncio's own loop (`serve --event-loop asyncio`; serve before uvloop).
    "serve-asyncio": lambda router: connections.protocol_with_header_timeout(60.0, router),
    # The same protocol with every request through ASGI (serve before agent_protocol).
    "serve-asgi": lambda router: connections.protocol_with_header_timeout(60.0),
    # For comparison: uvicorn's own protocols as they come (one write per ASGI message).
    "httptools": lambda router: "httptools",
    "h11": lambda router: "h11",
}
# The event loop of each stack: `serve` runs on the one `shipyard serve` picks; the rest on
# asyncio's, as they were measured before serve moved to uvloop.
LOOPS = {"serve": event_loop.AUTO}


def serve_router(port: int, agent_port: int, stack: str) -> None:
    """The production router on a server stack, routing HOST to the agent (child process)."""
    upstreams = {HOST: proxy.Upstream("bench", "production", "v1", agent_port)}
    router = proxy.Router(_not_found, lambda: upstreams, proxy.host_pattern(TEMPLATE), Metrics())
    config = uvicorn.Config(
        router,
        host="127.0.0.1",
        port=port,
        lifespan="off",
        log_level="warning",
        access_log=False,  # as serve
        server_header=False,
        date_header=False,
        http=STACKS[stack](router),
    )
    event_loop.run(uvicorn.Server(config).serve(), LOOPS.get(stack, "asyncio"))


_UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wrk(port: int, seconds: float, host: str | None, pid: int) -> dict[str, float]:
    """wrk's requests/s and p50, and the CPU the server (`pid`) spent per request."""
    cpu = _cpu_seconds(pid)
    command = ["wrk", "-t", "1", "-c", "8", "-d", f"{seconds:g}s", "--latency"]
    if host:
        command += ["-H", f"Host: {host}"]
    output = subprocess.run(
        [*command, f"http://127.0.0.1:{port}/"], capture_output=True, text=True, check=True
    ).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p50 = re.search(r"^\s+50%\s+([\d.]+)(us|ms|s)", output, re.MULTILINE)
    if rps is None or p50 is None:
        raise SystemExit(f"could not read wrk's output:\n{output}")
    if "Non-2xx" in output or "Socket errors" in output:
        raise SystemExit(f"requests failed:\n{output}")
    requests = re.search(r"(\d+) requests in", output)
    assert requests is not None
    return {
        "rps": float(rps.group(1)),
        "p50_ms": float(p50.group(1)) * _UNIT[p50.group(2)],
        "cpu_us": (_cpu_seconds(pid) - cpu) / int(requests.group(1)) * 1e6,
    }


def throughput(seconds: float, rounds: int, stacks: list[str]) -> dict[str, Any]:
    agent_port = _free_port()
    environment = {**os.environ, "PORT": str(agent_port), "SHIPYARD_AGENT": "bench"}
    agent = subprocess.Popen(
        [sys.executable, str(AGENT)],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,  # wrk's closing connections make it print resets
    )
    routers = {}
    for stack in stacks:
        port = _free_port()
        routers[stack] = (
            port,
            subprocess.Popen(
                [sys.executable, __file__, "--serve-router", str(port), str(agent_port), stack]
            ),
        )
    runs: dict[str, list[dict[str, float]]] = {"direct": [], **{stack: [] for stack in stacks}}
    targets = [("direct", agent_port, None, agent.pid)] + [
        (stack, port, HOST, process.pid) for stack, (port, process) in routers.items()
    ]
    try:
        _wait_port(agent_port)
        for port, _ in routers.values():
            _wait_port(port)
        for _, port, host, pid in targets:  # warm up
            _wrk(port, 1, host, pid)
        for index in range(rounds):
            # Alternating order, so a noisy neighbour slows every setup alike.
            for name, port, host, pid in targets if index % 2 == 0 else targets[::-1]:
                runs[name].append(_wrk(port, seconds, host, pid))
    finally:
        for _, process in routers.values():
            process.terminate()
            process.wait(10)
        agent.terminate()
        agent.wait(10)
    result: dict[str, Any] = {"runs": runs}
    for name, measured in runs.items():
        result[name] = {
            "rps": statistics.median(run["rps"] for run in measured),
            "p50_ms": statistics.median(run["p50_ms"] for run in measured),
            "cpu_us": statistics.median(run["cpu_us"] for run in measured),
        }
    for stack in stacks:
        result[stack]["ratio"] = result[stack]["rps"] / result["direct"]["rps"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--routes", type=int, nargs="+", default=[1, 1000, 50000])
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--stacks",
        nargs="+",
        choices=sorted(STACKS),
        default=["serve", "serve-asyncio", "serve-asgi", "h11"],
        help="server stacks to put the router on (serve: what shipyard serve runs)",
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--serve-router", nargs=3, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.serve_router:
        port, agent_port, stack = options.serve_router
        serve_router(int(port), int(agent_port), stack)
        return
    lookups = lookup(options.routes)
    speed = throughput(options.seconds, options.rounds, options.stacks)
    if options.json:
        print(json.dumps({"lookup": lookups, "throughput": speed}, indent=2))
        return
    print("routes      lookup per request   full rebuild (the cost per request before)")
    for row in lookups:
        print(f"{row['routes']:>7,}   {row['lookup_ns']:>12.0f} ns   {row['rebuild_ms']:>14.2f} ms")
    flat = max(r["lookup_ns"] for r in lookups) / min(r["lookup_ns"] for r in lookups)
    print(f"lookup at most / at least: {flat:.2f}x (flat when near 1)")
    print()
    print(
        f"wrk -t1 -c8 -d{options.seconds:g}s (keep-alive), "
        f"median of {options.rounds} rounds, alternating"
    )
    direct = speed["direct"]
    print(
        f"direct:                 {direct['rps']:>8.0f} req/s   p50 {direct['p50_ms']:.2f} ms   "
        f"agent CPU {direct['cpu_us']:.0f} µs/request"
    )
    for stack in options.stacks:
        row = speed[stack]
        print(
            f"router on {stack:<14}{row['rps']:>8.0f} req/s   p50 {row['p50_ms']:.2f} ms   "
            f"router CPU {row['cpu_us']:.0f} µs/request   {row['ratio']:.2f}x direct"
        )
    print(f"serve's event loop here: {event_loop.resolve(event_loop.AUTO)}")
    print("goal: router (serve) / direct >= 0.7x, aim 0.9x")


if __name__ == "__main__":
    main()
