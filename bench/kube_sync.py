"""Benchmark the Kubernetes target with 1,000 agents against the project's fake API server.

Why this exists: the Kubernetes target must not make write calls when nothing changed,
must write only the objects of an agent that changed, and otherwise should cost little
more than the official client's own price per server-side apply. This script drives the
real controller, driver, target and official client against the fake API server on
loopback, by default in a process of its own as a real API server is (`--in-process`
shares this interpreter and its GIL, as the first version of this bench did):

    python bench/kube_sync.py [--agents 1000] [--json]
    python bench/kube_sync.py --previews 5      # controller RSS with 1,000-agent previews
    python bench/kube_sync.py --serve-runs 5    # `shipyard serve` five times: false failures

Default run: (a) the first production sync, (b) a sync with nothing changed, (c) a
one-agent change, (d) a new branch whose preview holds every agent; then, side by side
in the same run against the same server, the very objects (a) wrote applied again by a
bare loop of `KubeClient.apply` (the official client's server-side apply), one at a time
and from a pool as large as the target's. It prints (a)'s cost per write as a ratio of
each bare loop's (goal ≤ 1.2 against the pool of the same size) and (a)'s wall time
(goal ≤ 4 s). The `failed` column counts rollouts that did not end Healthy: every
version here is healthy, so any is a false failure. Beside this process's CPU it prints
the fake's (`fake cpu`, read from /proc), for each step and each bare loop: on a small
machine the two processes' CPU, not the network, is what a sync's wall time is made of.

`--previews N` adds N branches (each a preview of every agent) after (a) and prints this
process's resident memory (the controller's: the fake runs elsewhere, and this mode
keeps no copies of what was applied and runs no bare loops) after each, with the growth
per preview (goal: ≤ 250 MiB with 5 previews of 1,000 agents).
`--serve-runs N` runs the real `shipyard serve --target kubernetes` N times, each against
a fresh fake and state directory until every agent is ready, and counts rollouts that
ended other than Healthy (goal: zero in five runs).
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
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import httpx

from controller.reconciler import drivers, kube_workloads
from controller.reconciler.config import ControllerConfig
from controller.reconciler.controller import Controller
from controller.source.mirror import Mirror
from controller.store.records import RolloutResult
from controller.store.sqlite import Store
from controller.targets.kubernetes.client import KubeClient, KubeObject
from controller.targets.kubernetes.target import KubernetesTarget

# The fake API server lives with the tests; the repository root makes it importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.fake_apiserver.server import FakeApiServer

ROOT = Path(__file__).resolve().parents[1]
GIT = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.com"]
FAILED = (RolloutResult.FAILED, RolloutResult.ROLLED_BACK)


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


def repository(root: Path, agents: int) -> tuple[Path, Path]:
    """(bare remote, working clone) holding `agents` agents on main."""
    remote, work = root / "remote.git", root / "work"
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q", "--bare", "--initial-branch=main", str(remote))
    git(root, "init", "-q", "--initial-branch=main", str(work))
    git(work, "remote", "add", "origin", str(remote))
    (work / "agents").mkdir()
    for index in range(agents):
        (work / "agents" / f"agent-{index:04d}.yaml").write_text(manifest(index))
    push(work, "agents", "main")
    return remote, work


@contextmanager
def fake_apiserver(root: Path, *, in_process: bool) -> Iterator[tuple[Path, int | None]]:
    """A fresh fake API server (Deployments ready at once); yields its kubeconfig and its
    process id (None in this process)."""
    kubeconfig = root / "kubeconfig"
    if in_process:
        fake = FakeApiServer(ready_delay=0.0).start()
        fake.kubeconfig(kubeconfig)
        try:
            yield kubeconfig, None
        finally:
            fake.stop()
        return
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "tests.fake_apiserver", "--port", "0"),
            *("--kubeconfig-out", str(kubeconfig), "--ready-delay", "0"),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith("kubeconfig written"):
                break
        else:
            raise SystemExit("the fake API server did not start")
        yield kubeconfig, process.pid
    finally:
        process.terminate()
        process.wait(timeout=30)


class RecordingClient(KubeClient):
    """The target's client, keeping what it applied so a bare loop can send the same."""

    applied: list[KubeObject]
    recording = True  # off when measuring memory: the copies would count as the target's

    def apply(self, obj: KubeObject, *, force: bool = True) -> KubeObject:
        if self.recording:
            self.applied.append(obj)
        return super().apply(obj, force=force)


def process_cpu(pid: int | None) -> float:
    """CPU seconds (user + system) the process `pid` has used; NaN for None."""
    if pid is None:
        return float("nan")
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def resident_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def moved(objects: list[KubeObject], namespace: str, to: str) -> list[KubeObject]:
    """`objects` with namespace `namespace` (and its Namespace object) renamed `to`."""
    text = json.dumps(objects).replace(f'"{namespace}"', f'"{to}"')
    copies: list[KubeObject] = json.loads(text)
    return copies


def bare_loop(client: KubeClient, objects: list[KubeObject], workers: int) -> float:
    """Seconds to server-side-apply `objects` (namespaces first) with `workers` threads."""
    first = [o for o in objects if o["kind"] == "Namespace"]
    rest = [o for o in objects if o["kind"] != "Namespace"]
    started = time.perf_counter()
    for obj in first:
        client.apply(obj)
    if workers == 1:
        for obj in rest:
            client.apply(obj)
    else:
        with ThreadPoolExecutor(workers, thread_name_prefix="bare-apply") as pool:
            list(pool.map(client.apply, rest))
    return time.perf_counter() - started


def side_by_side(
    client: KubeClient,
    first_objects: list[KubeObject],
    first: dict[str, Any],
    *,
    namespace: str,
    workers: int,
    fake_pid: int | None,
) -> dict[str, Any]:
    """The objects (a) wrote, applied again by bare loops: seconds, CPU, ratios."""
    cpu = {}

    def timed_loop(namespace_to: str, loop_workers: int) -> float:
        cpu_started, fake_started = time.process_time(), process_cpu(fake_pid)
        objects = moved(first_objects, namespace, namespace_to)
        seconds = bare_loop(client, objects, loop_workers)
        cpu[namespace_to] = (
            time.process_time() - cpu_started,
            process_cpu(fake_pid) - fake_started,
        )
        return seconds

    serial = timed_loop("bare-serial", 1)
    pooled = timed_loop("bare-pool", workers)
    per_write = first["seconds"] / first["writes"]
    return {
        "writes": len(first_objects),
        "workers": workers,
        "serial_seconds": serial,
        "pool_seconds": pooled,
        "serial_cpu_seconds": cpu["bare-serial"],  # (this process, the fake)
        "pool_cpu_seconds": cpu["bare-pool"],
        "ratio_to_serial": per_write / (serial / len(first_objects)),
        "ratio_to_pool": per_write / (pooled / len(first_objects)),
    }


async def measure(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    remote, work = repository(root, args.agents)
    with fake_apiserver(root, in_process=args.in_process) as (kubeconfig, fake_pid):
        client = cast(RecordingClient, RecordingClient.from_config(str(kubeconfig)))
        client.applied = []
        client.recording = not args.previews
        target = KubernetesTarget(client, poll_interval=0.25)
        config = ControllerConfig(repo=str(remote), state_dir=root / "state", poll_interval=3600)
        store = Store(config.database)
        options = kube_workloads.ClusterOptions()
        controller = Controller(
            config, Mirror(config.repo, config.mirror_dir), store, target,
            driver=drivers.KubernetesDriver(target, options, config.repo),
        )  # fmt: skip
        rows: list[dict[str, Any]] = []
        memory: list[dict[str, Any]] = []

        def http_calls() -> int:
            # Discovery lookups are answered from the client's cache, not by the server.
            return sum(count for verb, count in client.calls.items() if verb != "discovery")

        def failed_rollouts() -> int:
            return sum(1 for r in store.rollouts(limit=1_000_000) if r.result in FAILED)

        async def step(name: str) -> dict[str, Any]:
            before_failed, before_calls = failed_rollouts(), http_calls()
            before_writes = client.writes()
            started, cpu_started = time.perf_counter(), time.process_time()
            fake_cpu_started = process_cpu(fake_pid)
            await controller.sync_once()
            await controller.wait_idle()
            seconds = time.perf_counter() - started
            cpu = time.process_time() - cpu_started
            fake_cpu = process_cpu(fake_pid) - fake_cpu_started
            writes = client.writes() - before_writes
            row = {
                "step": name,
                "calls": http_calls() - before_calls,
                "writes": writes,
                "seconds": seconds,
                "cpu_seconds": cpu,
                "fake_cpu_seconds": fake_cpu,
                "ms_per_write": seconds * 1000 / writes if writes else None,
                "false_failures": failed_rollouts() - before_failed,
            }
            rows.append(row)
            return row

        try:
            memory.append({"after": "start", "rss_mib": resident_mib()})
            first = await step("(a) first production sync")
            memory.append({"after": "(a)", "rss_mib": resident_mib()})
            first_objects = list(client.applied)
            if args.previews:
                await previews(args, work, step, memory)
            else:
                await changes(args, work, step, controller)
        finally:
            await controller.close()
            store.close()
        if args.previews:
            return {"agents": args.agents, "steps": rows, "bare": None, "memory": memory}
        # Side by side: the objects (a) wrote, applied again by bare loops.
        namespace = kube_workloads.ClusterOptions().production_namespace
        # Before the target had a write pool of its own its applies ran on asyncio's
        # default executor: min(32, cores + 4) threads.
        workers = getattr(target, "apply_workers", min(32, (os.cpu_count() or 1) + 4))
        bare = side_by_side(
            client, first_objects, first, namespace=namespace, workers=workers, fake_pid=fake_pid
        )
    return {"agents": args.agents, "steps": rows, "bare": bare, "memory": memory}


Step = Callable[[str], Awaitable[dict[str, Any]]]


async def previews(
    args: argparse.Namespace, work: Path, step: Step, memory: list[dict[str, Any]]
) -> None:
    """N branches, each previewing every agent; this process's RSS after each."""
    for index in range(args.previews):
        git(work, "checkout", "-q", "-B", f"preview-{index}", "main")
        (work / "agents" / "agent-0001.yaml").write_text(manifest(1, 0.5 + index / 10))
        push(work, f"preview {index}", f"preview-{index}")
        await step(f"preview {index + 1}, {args.agents} agents")
        memory.append({"after": f"preview {index + 1}", "rss_mib": resident_mib()})
    git(work, "checkout", "-q", "main")


async def changes(args: argparse.Namespace, work: Path, step: Step, controller: Controller) -> None:
    """(b) nothing changed, (c) one agent changed, (d) a preview of every agent."""
    object.__setattr__(controller.config, "resync_interval", 0.0)
    await step("(b) sync, nothing changed")
    object.__setattr__(controller.config, "resync_interval", 3600.0)
    (work / "agents" / "agent-0000.yaml").write_text(manifest(0, 0.9))
    push(work, "one agent", "main")
    await step("(c) one-agent change")
    git(work, "checkout", "-q", "-b", "feature")
    (work / "agents" / "agent-0001.yaml").write_text(manifest(1, 0.8))
    push(work, "feature", "feature")
    await step(f"(d) new preview, {args.agents} agents")


def serve_run(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    """One `shipyard serve --target kubernetes` until every agent is ready."""
    from tests.integration.controller_harness import Shipyard  # noqa: PLC0415
    from tests.integration.test_kubernetes_serve import kubernetes_flags  # noqa: PLC0415

    remote, _ = repository(root, args.agents)
    with fake_apiserver(root, in_process=False) as (kubeconfig, _):
        shipyard = Shipyard(remote, root / "state", *kubernetes_flags(kubeconfig))
        shipyard.process_only()
        started = time.monotonic()
        ready = 0
        try:
            while time.monotonic() - started < args.serve_timeout:
                try:
                    production = shipyard.environments().get("production") or {}
                except (httpx.HTTPError, ValueError, KeyError):
                    production = {}
                agents = production.get("agents") or []
                ready = sum(1 for agent in agents if agent.get("ready"))
                if ready == args.agents:
                    break
                time.sleep(0.5)
            seconds = time.monotonic() - started
        finally:
            shipyard.close()
    store = Store(root / "state" / "shipyard.db")
    try:
        rollouts = store.rollouts(limit=1_000_000)
    finally:
        store.close()
    failed = [r for r in rollouts if r.result in FAILED]
    return {
        "ready": ready,
        "seconds": seconds,
        "rollouts": len(rollouts),
        "false_failures": len(failed),
        "reasons": sorted({r.reason for r in failed})[:3],
    }


def print_measure(result: dict[str, Any]) -> None:
    print(f"{result['agents']} agents against the fake API server")
    # cpu: this process's (the controller's, all its threads; the fake runs elsewhere).
    # fake cpu: the fake API server's process (nan when it runs in this one).
    print(f"{'step':<32} {'calls':>7} {'writes':>7} {'seconds':>8} {'cpu s':>6} "
          f"{'fake cpu':>8} {'ms/write':>9} {'failed':>7}")  # fmt: skip
    for row in result["steps"]:
        per = f"{row['ms_per_write']:.2f}" if row["ms_per_write"] else "-"
        print(
            f"{row['step']:<32} {row['calls']:>7} {row['writes']:>7} "
            f"{row['seconds']:>8.2f} {row['cpu_seconds']:>6.2f} "
            f"{row['fake_cpu_seconds']:>8.2f} {per:>9} {row['false_failures']:>7}"
        )
    steps = {row["step"][:3]: row for row in result["steps"]}
    if "(b)" in steps:
        one = steps["(c)"]
        print(f"(b) zero writes: {'met' if steps['(b)']['writes'] == 0 else 'NOT met'}; "
              f"(c) {one['writes']} writes in {one['seconds'] * 1000:.0f} ms "
              f"(goal: that agent's objects only, < 1000 ms)")  # fmt: skip
    bare, first = result["bare"], result["steps"][0]
    if bare is None:
        print_memory(result)
        return
    n = bare["writes"]
    serial = bare["serial_seconds"]
    print(f"bare server-side-apply loop, the same {n} objects: "
          f"serial {serial:.2f} s ({serial * 1000 / n:.2f} ms/write), "
          f"{bare['workers']} threads {bare['pool_seconds']:.2f} s "
          f"({bare['pool_seconds'] * 1000 / n:.2f} ms/write)")  # fmt: skip
    for name in ("serial", "pool"):
        mine, fake = bare[f"{name}_cpu_seconds"]
        print(f"  {name} loop CPU: this process {mine:.2f} s, fake {fake:.2f} s, "
              f"sum {mine + fake:.2f} s ({(mine + fake) * 1000 / n:.2f} ms/write)")  # fmt: skip
    print(f"(a) per write / bare per write: {bare['ratio_to_pool']:.2f}x the pool of "
          f"{bare['workers']} (goal ≤ 1.2), {bare['ratio_to_serial']:.2f}x the serial loop; "
          f"(a) {first['seconds']:.2f} s (goal ≤ 4 s)")  # fmt: skip


def print_memory(result: dict[str, Any]) -> None:
    memory = result["memory"]
    if len(memory) > 2:
        base = memory[1]["rss_mib"]
        previews = len(memory) - 2
        growth = (memory[-1]["rss_mib"] - base) / previews
        trail = ", ".join(f"{m['after']} {m['rss_mib']:.0f}" for m in memory)
        print(f"controller RSS MiB: {trail}")
        print(f"RSS with {previews} previews: {memory[-1]['rss_mib']:.0f} MiB (goal ≤ 250), "
              f"+{growth:.1f} MiB per preview of {result['agents']} agents")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--in-process", action="store_true", help="the fake in this process")
    parser.add_argument("--previews", type=int, default=0, help="measure RSS with N previews")
    parser.add_argument("--serve-runs", type=int, default=0, help="N `shipyard serve` runs")
    parser.add_argument("--serve-timeout", type=float, default=600.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("GIT_CONFIG_GLOBAL", os.devnull)
    root = Path(tempfile.mkdtemp(prefix="shipyard-kube-bench-"))
    try:
        if args.serve_runs:
            runs = []
            for index in range(args.serve_runs):
                run = serve_run(args, root / f"serve-{index}")
                runs.append(run)
                if not args.json:
                    print(f"serve run {index + 1}: {run['ready']}/{args.agents} ready in "
                          f"{run['seconds']:.1f} s, {run['rollouts']} rollouts, "
                          f"{run['false_failures']} false failures {run['reasons'] or ''}",
                          flush=True)  # fmt: skip
            total = sum(run["false_failures"] for run in runs)
            unready = sum(1 for run in runs if run["ready"] != args.agents)
            if args.json:
                print(json.dumps(runs, indent=2))
            else:
                print(f"{args.serve_runs} serve runs of {args.agents} agents: {total} false "
                      f"failures, {unready} runs not all ready (goal: 0 and 0)")  # fmt: skip
            return 0 if total == 0 and unready == 0 else 1
        result = asyncio.run(measure(args, root / "run"))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_measure(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
