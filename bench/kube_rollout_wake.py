"""Benchmark how soon a rollout wait on the Kubernetes target sees its version available.

Why this exists: rollout waits used to look at the watch cache every `poll_interval`
(0.25 s in `bench/kube_sync.py`, 0.5 s by default), so every rollout, even of one agent
on an idle cluster, took at least one tick past the moment its Deployment was
available. Waits are now woken by the watch's events, the poll interval only bounding
each sleep. This script deploys one agent version after another against the fake API
server (in this process, pods ready 50 ms after creation) with a poll interval of 0.25 s
and, side by side in the same run, of 5 s, and prints the median rollout of each and
their ratio: ~1.0 when waits are woken by the watch (a polling wait would take ≥ 5 s in
the second).

    python bench/kube_rollout_wake.py [--rollouts 20] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from controller.targets.kubernetes.client import KubeClient
from controller.targets.kubernetes.target import KubernetesTarget

# The fake API server and the rendered request live with the tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.fake_apiserver.server import FakeApiServer
from tests.integration.gateway_cluster import request

POLL_INTERVALS = (0.25, 5.0)


async def rollouts(kubeconfig: Path, poll_interval: float, count: int, agent: str) -> list[float]:
    """Seconds each of `count` successive versions of `agent` took to turn healthy."""
    target = KubernetesTarget(KubeClient.from_config(str(kubeconfig)), poll_interval=poll_interval)
    seconds: list[float] = []
    try:
        await target.deploy(request(agent, "v0"), 30)  # starts the watches
        for index in range(1, count + 1):
            started = time.perf_counter()
            result = await target.deploy(request(agent, f"v{index}"), 30)
            seconds.append(time.perf_counter() - started)
            if not result.healthy:
                raise SystemExit(f"{agent} v{index} did not turn healthy: {result.message}")
    finally:
        await target.close()
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rollouts", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    server = FakeApiServer(ready_delay=0.05).start()
    try:
        with tempfile.TemporaryDirectory() as root:
            kubeconfig = server.kubeconfig(Path(root) / "kubeconfig")
            medians = {
                interval: statistics.median(
                    asyncio.run(rollouts(kubeconfig, interval, args.rollouts, f"agent-{i}"))
                )
                for i, interval in enumerate(POLL_INTERVALS)
            }
    finally:
        server.stop()
    fast, slow = (medians[interval] for interval in POLL_INTERVALS)
    if args.json:
        by_interval = {str(interval): median for interval, median in medians.items()}
        print(json.dumps({"medians": by_interval, "ratio": slow / fast}))
        return 0
    for interval, median in medians.items():
        print(f"poll interval {interval:>5.2f} s: median rollout {median * 1000:.0f} ms "
              f"over {args.rollouts} versions")  # fmt: skip
    print(f"ratio {slow / fast:.2f} (goal ~1.0: waits woken by the watch, not by the poll)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
