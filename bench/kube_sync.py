"""Benchmark the Kubernetes target with 1,000 agents against the project's fake API server.

Why this exists: the Kubernetes target must not make write calls when nothing changed,
must write only the objects of an agent that changed, and otherwise should cost little
more than the official client's own per-call price (~3 ms on these machines). This
script drives the real controller, driver, target and official client against the fake
API server on loopback and prints, for each step, the API calls made and the time taken:

    python bench/kube_sync.py [--agents 1000] [--json]

(a) the first production sync, (b) a sync with nothing changed, (c) a one-agent change,
(d) a new branch whose preview holds every agent. The `failed` column counts rollouts
that did not end Healthy: every version here is healthy, so any is a false failure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from controller.reconciler import drivers, kube_workloads
from controller.reconciler.config import ControllerConfig
from controller.reconciler.controller import Controller
from controller.source.mirror import Mirror
from controller.store.records import RolloutResult
from controller.store.sqlite import Store
from controller.targets.kubernetes.client import KubeClient
from controller.targets.kubernetes.target import KubernetesTarget

# The fake API server lives with the tests; the repository root makes it importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.fake_apiserver.server import FakeApiServer

GIT = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.com"]


def manifest(index: int, temperature: float = 0.2) -> str:
    return f"""\
apiVersion: shipyard.dev/v1alpha1
kind: Agent
metadata: {{name: agent-{index:04d}}}
spec:
  image: ghcr.io/acme/agent:1.0.0
  model: {{provider: fake, name: echo, parameters: {{temperature: {temperature}}}}}
  prompt: {{system: You are agent {index}.}}
"""


def git(cwd: Path, *args: str) -> None:
    subprocess.run([*GIT, *args], cwd=cwd, check=True, capture_output=True)


def push(work: Path, message: str, *refs: str) -> None:
    git(work, "add", "-A")
    git(work, "commit", "-qm", message)
    git(work, "push", "-q", "origin", *refs)


async def measure(agents: int, root: Path) -> list[dict[str, Any]]:
    remote, work = root / "remote.git", root / "work"
    root.mkdir(exist_ok=True)
    git(root, "init", "-q", "--bare", "--initial-branch=main", str(remote))
    git(root, "init", "-q", "--initial-branch=main", str(work))
    git(work, "remote", "add", "origin", str(remote))
    (work / "agents").mkdir()
    for index in range(agents):
        (work / "agents" / f"agent-{index:04d}.yaml").write_text(manifest(index))
    push(work, "agents", "main")

    fake = FakeApiServer(ready_delay=0.0).start()
    client = KubeClient.from_config(str(fake.kubeconfig(root / "kubeconfig")))
    target = KubernetesTarget(client, poll_interval=0.25)
    config = ControllerConfig(repo=str(remote), state_dir=root / "state", poll_interval=3600)
    store = Store(config.database)
    options = kube_workloads.ClusterOptions()
    controller = Controller(
        config, Mirror(config.repo, config.mirror_dir), store, target,
        driver=drivers.KubernetesDriver(target, options, config.repo),
    )  # fmt: skip
    rows: list[dict[str, Any]] = []

    def http_calls() -> int:
        # Discovery lookups are answered from the client's cache, not by the server.
        return sum(count for verb, count in client.calls.items() if verb != "discovery")

    def failed_rollouts() -> int:
        # Every step here deploys healthy versions: any failure is a false one.
        ended_badly = (RolloutResult.FAILED, RolloutResult.ROLLED_BACK)
        return sum(1 for rollout in store.rollouts() if rollout.result in ended_badly)

    async def step(name: str) -> None:
        before_failed = failed_rollouts()
        before_calls = http_calls()
        before_writes = client.writes()
        started = time.perf_counter()
        await controller.sync_once()
        await controller.wait_idle()
        seconds = time.perf_counter() - started
        writes = client.writes() - before_writes
        rows.append(
            {
                "step": name,
                "calls": http_calls() - before_calls,
                "writes": writes,
                "seconds": seconds,
                "ms_per_write": seconds * 1000 / writes if writes else None,
                "false_failures": failed_rollouts() - before_failed,
            }
        )

    try:
        await step("(a) first production sync")
        object.__setattr__(controller.config, "resync_interval", 0.0)
        await step("(b) sync, nothing changed")
        object.__setattr__(controller.config, "resync_interval", 3600.0)
        (work / "agents" / "agent-0000.yaml").write_text(manifest(0, 0.9))
        push(work, "one agent", "main")
        await step("(c) one-agent change")
        git(work, "checkout", "-q", "-b", "feature")
        (work / "agents" / "agent-0001.yaml").write_text(manifest(1, 0.8))
        push(work, "feature", "feature")
        await step(f"(d) new preview, {agents} agents")
    finally:
        await controller.close()
        store.close()
        fake.stop()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("GIT_CONFIG_GLOBAL", os.devnull)
    root = Path(tempfile.mkdtemp(prefix="shipyard-kube-bench-"))
    try:
        rows = asyncio.run(measure(args.agents, root / "run"))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{args.agents} agents against the fake API server")
    print(f"{'step':<32} {'calls':>7} {'writes':>7} {'seconds':>8} {'ms/write':>9} {'failed':>7}")
    for row in rows:
        per = f"{row['ms_per_write']:.2f}" if row["ms_per_write"] else "-"
        print(
            f"{row['step']:<32} {row['calls']:>7} {row['writes']:>7} "
            f"{row['seconds']:>8.2f} {per:>9} {row['false_failures']:>7}"
        )
    nothing = rows[1]["writes"] == 0
    one = rows[2]
    print(f"(b) zero writes: {'met' if nothing else 'NOT met'}; "
          f"(c) {one['writes']} writes in {one['seconds'] * 1000:.0f} ms "
          f"(goal: that agent's objects only, < 1000 ms)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
