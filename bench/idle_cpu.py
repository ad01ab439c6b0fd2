"""Benchmark what an idle controller costs with 50 local agents: health probes, mostly.

Why this exists: with nothing changing, the local target still probes every agent every
two seconds (25 probes/s at 50 agents). The goal (issue: performance at scale) is an
idle controller under 1% of a core. Two measurements in one run:

    python bench/idle_cpu.py [--agents 50] [--seconds 20] [--json]

1. Probes alone, side by side: 50 example agents (real processes); one process probes
   each every 2 s for `--seconds`, once with Shipyard's kept-alive probe and once the way
   it probed before (httpx, a new connection per probe), alternating twice; printed as
   CPU % of one core and the ratio.
2. The whole controller: `shipyard serve` on a repository of 50 agents (the example
   agent), idle after its first sync; its CPU % over `--seconds`, from /proc.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from controller.targets.local.health_probe import HealthProbe

ROOT = Path(__file__).resolve().parent.parent
AGENT = ROOT / "examples" / "agents-repo" / "agent" / "server.py"
PERIOD = 2.0
GIT = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.com"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit(f"nothing listens on port {port}")


Probe = Callable[[], Awaitable[bool]]


async def _probe_for(seconds: float, probes: list[Probe]) -> float:
    """CPU seconds this process spent probing each of `probes` every PERIOD for `seconds`."""
    failures = 0

    async def loop(probe: Probe, offset: float) -> None:
        nonlocal failures
        await asyncio.sleep(offset)
        end = time.monotonic() + seconds - offset
        while time.monotonic() < end:
            failures += not await probe()
            await asyncio.sleep(PERIOD)

    started = time.process_time()
    spread = PERIOD / len(probes)
    await asyncio.gather(*(loop(probe, index * spread) for index, probe in enumerate(probes)))
    if failures:
        raise SystemExit(f"{failures} probes failed")
    return time.process_time() - started


async def _kept_alive(ports: list[int], seconds: float) -> float:
    probes = [HealthProbe(port, "/healthz") for port in ports]

    def check(probe: HealthProbe) -> Probe:
        async def run() -> bool:
            return (await probe.check(1.0))[0]

        return run

    try:
        return await _probe_for(seconds, [check(probe) for probe in probes])
    finally:
        for probe in probes:
            probe.close()


async def _new_connections(ports: list[int], seconds: float) -> float:
    """How the local target probed before: httpx, no keep-alive."""

    def check(client: httpx.AsyncClient, port: int) -> Probe:
        async def run() -> bool:
            response = await client.get(f"http://127.0.0.1:{port}/healthz")
            return response.is_success

        return run

    async with httpx.AsyncClient(
        trust_env=False, limits=httpx.Limits(max_keepalive_connections=0), timeout=1.0
    ) as client:
        return await _probe_for(seconds, [check(client, port) for port in ports])


def probes_side_by_side(agents: int, seconds: float) -> dict[str, Any]:
    ports = [_free_port() for _ in range(agents)]
    processes = [
        subprocess.Popen(
            [sys.executable, str(AGENT)],
            env={**os.environ, "PORT": str(port)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for port in ports
    ]
    try:
        for port in ports:
            _wait_port(port)
        kept: list[float] = []
        fresh: list[float] = []
        for index in range(2):
            order = [(kept, _kept_alive), (fresh, _new_connections)]
            for runs, mode in order if index % 2 == 0 else order[::-1]:
                runs.append(100 * asyncio.run(mode(ports, seconds)) / seconds)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(10)
    return {
        "kept_alive_percent": statistics.median(kept),
        "new_connection_percent": statistics.median(fresh),
        "runs": {"kept_alive": kept, "new_connection": fresh},
    }


def _manifest(index: int) -> str:
    return f"""\
apiVersion: shipyard.dev/v1alpha1
kind: Agent
metadata:
  name: agent-{index:03d}
spec:
  run:
    command: ["python3", "agent/server.py"]
  model:
    provider: fake
    name: echo
  prompt:
    system: You are agent {index}.
"""


def _repository(root: Path, agents: int) -> Path:
    remote, work = root / "remote.git", root / "work"
    subprocess.run([*GIT, "init", "-q", "--bare", "--initial-branch=main", str(remote)], check=True)
    subprocess.run([*GIT, "init", "-q", "--initial-branch=main", str(work)], check=True)
    (work / "agent").mkdir()
    (work / "agent" / "server.py").write_text(AGENT.read_text())
    (work / "agents").mkdir()
    for index in range(agents):
        (work / "agents" / f"agent-{index:03d}.yaml").write_text(_manifest(index))
    steps = (["add", "-A"], ["commit", "-qm", "agents"], ["push", "-q", str(remote), "main"])
    for step in steps:
        subprocess.run([*GIT, *step], cwd=work, check=True)
    return remote


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def controller_idle(agents: int, seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        remote = _repository(root, agents)
        port = _free_port()
        shipyard = Path(sys.executable).parent / "shipyard"
        command = [str(shipyard), "serve", "--repo", str(remote), "--port", str(port)]
        serve = subprocess.Popen(
            [*command, "--state-dir", str(root / "state")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            with httpx.Client(trust_env=False, timeout=10) as client:
                deadline = time.monotonic() + 300
                while time.monotonic() < deadline:
                    # Ready after the first sync, which waits for every agent's health.
                    with contextlib.suppress(httpx.HTTPError):
                        if client.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                            break
                    time.sleep(0.5)
                else:
                    raise SystemExit("the agents never all turned ready")
            time.sleep(PERIOD * 2)  # let startup probing settle into the steady period
            before = _cpu_seconds(serve.pid)
            time.sleep(seconds)
            spent = _cpu_seconds(serve.pid) - before
        finally:
            serve.terminate()
            serve.wait(30)
    return {"controller_percent": 100 * spent / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    probes = probes_side_by_side(options.agents, options.seconds)
    idle = controller_idle(options.agents, options.seconds)
    if options.json:
        print(json.dumps({**probes, **idle}, indent=2))
        return
    rate = options.agents / PERIOD
    print(f"{options.agents} agents probed every {PERIOD:g}s ({rate:g} probes/s), % of one core:")
    print(f"  new connection per probe (before): {probes['new_connection_percent']:.2f} %")
    print(f"  kept-alive probe (now):            {probes['kept_alive_percent']:.2f} %")
    ratio = probes["new_connection_percent"] / max(probes["kept_alive_percent"], 1e-9)
    print(f"  ratio: {ratio:.1f}x less")
    print(f"whole controller, idle, {options.agents} agents: {idle['controller_percent']:.2f} % "
          "(goal < 1 %)")  # fmt: skip


if __name__ == "__main__":
    main()
