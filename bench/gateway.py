"""Benchmark `shipyard gateway`: requests/s through it as a ratio to calling the pod directly.

Why this exists: on a cluster every agent request passes through the gateway (issue #16),
so its cost is added to every agent call, as the local router's is (`bench/router.py`,
goal >= 0.7x of direct). Both are measured side by side in one run, on this machine:

    apt-get install -y wrk     # benchmarks are run by hand, so CI does not install it
    python bench/gateway.py [--seconds 5] [--rounds 3] [--replicas 1] [--json]

The project's fake API server and its test-only kubelet run the example agent
(examples/agents-repo/agent/server.py) as the pods of one Deployment, applied by the
real Kubernetes target; `shipyard gateway` runs as its own process against that API
server, watching the pods. `wrk -c 8` (HTTP/1.1 keep-alive) then runs against one pod's
address directly and against the gateway with the agent's Host, alternating, `--rounds`
times each; medians of requests/s and p50 are compared.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx

from controller.targets.kubernetes.client import KubeClient
from controller.targets.kubernetes.target import KubernetesTarget

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the fake API server and kubelet live in the tests package

from tests.fake_apiserver.kubelet import Image, Kubelet  # noqa: E402
from tests.fake_apiserver.server import FakeApiServer  # noqa: E402
from tests.integration import gateway_cluster  # noqa: E402

AGENT = ROOT / "examples" / "agents-repo" / "agent" / "server.py"
NAME = "bench"
_UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _wrk(url: str, seconds: float, host: str | None) -> dict[str, float]:
    command = ["wrk", "-t", "1", "-c", "8", "-d", f"{seconds:g}s", "--latency"]
    if host:
        command += ["-H", f"Host: {host}"]
    output = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p50 = re.search(r"^\s+50%\s+([\d.]+)(us|ms|s)", output, re.MULTILINE)
    if rps is None or p50 is None:
        raise SystemExit(f"could not read wrk's output:\n{output}")
    if "Non-2xx" in output or "Socket errors" in output:
        raise SystemExit(f"requests failed:\n{output}")
    return {"rps": float(rps.group(1)), "p50_ms": float(p50.group(1)) * _UNIT[p50.group(2)]}


def measure(seconds: float, rounds: int, replicas: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="shipyard-bench-gateway-") as directory:
        return _measure(Path(directory), seconds, rounds, replicas)


def _measure(scratch: Path, seconds: float, rounds: int, replicas: int) -> dict[str, Any]:
    # The agent writes a line per request; to /dev/null, as in bench/router.py, so the pod
    # is as fast as the agent there and the ratio compares like with like.
    command = f"exec {shlex.quote(sys.executable)} {shlex.quote(str(AGENT))} >/dev/null 2>&1"
    images = {gateway_cluster.IMAGE: Image(("sh", "-c", command))}
    with FakeApiServer() as fake:
        kubelet = Kubelet(fake, images, log_dir=scratch / "pods").start()
        kubeconfig = fake.kubeconfig(scratch / "kubeconfig")
        target = KubernetesTarget(KubeClient.from_config(str(kubeconfig)), poll_interval=0.05)
        try:
            deployed = asyncio.run(target.deploy(gateway_cluster.request(NAME, "v1", replicas), 60))
            if not deployed.healthy:
                raise SystemExit(f"the agent did not start: {deployed.message}")
            pods = [pod for pod in kubelet.running() if pod[0] == gateway_cluster.NAMESPACE]
            address = kubelet.address(*pods[0])
            assert address is not None
            direct_url = f"http://{address[0]}:{address[1]}/"
            host = f"{NAME}--production.agents.test"
            with gateway_cluster.gateway(kubeconfig, scratch / "gateway.log") as gateway:
                gateway_cluster.wait_for(
                    lambda: httpx.get(gateway.url, headers={"host": host}).status_code == 200,
                    what="the gateway to route to the pod",
                )
                _wrk(direct_url, 1, None)  # warm both up
                _wrk(gateway.url + "/", 1, host)
                direct: list[dict[str, float]] = []
                routed: list[dict[str, float]] = []
                for index in range(rounds):
                    order = [(direct, direct_url, None), (routed, gateway.url + "/", host)]
                    for runs, url, header in order if index % 2 == 0 else order[::-1]:
                        runs.append(_wrk(url, seconds, header))
        finally:
            asyncio.run(target.close())
            kubelet.stop()
    result: dict[str, Any] = {"direct": direct, "gateway": routed, "pods": replicas}
    for name, runs in (("direct", direct), ("gateway", routed)):
        result[f"{name}_rps"] = statistics.median(run["rps"] for run in runs)
        result[f"{name}_p50_ms"] = statistics.median(run["p50_ms"] for run in runs)
    result["ratio"] = result["gateway_rps"] / result["direct_rps"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--replicas", type=int, default=1, help="pods behind the gateway")
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    speed = measure(options.seconds, options.rounds, options.replicas)
    if options.json:
        print(json.dumps(speed, indent=2))
        return
    print(
        f"wrk -c 8 -d {options.seconds:g}s (keep-alive), median of {options.rounds} rounds, "
        f"alternating; {options.replicas} pod(s) behind the gateway, one called directly"
    )
    print(f"direct:  {speed['direct_rps']:>8.0f} req/s   p50 {speed['direct_p50_ms']:.2f} ms")
    print(f"gateway: {speed['gateway_rps']:>8.0f} req/s   p50 {speed['gateway_p50_ms']:.2f} ms")
    print(f"gateway / direct: {speed['ratio']:.2f}x (the local router's goal: >= 0.7x)")


if __name__ == "__main__":
    main()
