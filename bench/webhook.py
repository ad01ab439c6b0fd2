"""Benchmark webhook → live preview latency, and a burst of 1,000 deliveries.

Why this exists: with the poller at one hour, a push must still reach its preview in
about a second, and a burst of deliveries must neither be lost nor leave any branch
behind its newest commit. This runs a real `shipyard serve` (local target, real agent
processes) on loopback with a real git repository:

    python bench/webhook.py [--pushes 50] [--branches 50] [--deliveries 1000] [--json]
    python bench/webhook.py --agents 10 1000 [--pushes 40] [--json]
    python bench/webhook.py --flood [--stalled 200] [--flood-seconds 30] [--json]

(1) latency: `--pushes` times, commit a change to one agent on a branch, push, deliver
a signed GitHub push event, and time until the router serves the new version; prints
p50 and p95. (2) burst: `--branches` branches with `--deliveries / --branches` commits
each, every delivery sent concurrently; then checks every branch's preview ends at its
newest commit and every delivery was accepted.

`--agents A B …`: (1) only, once per repository size, side by side in one run: the
branch pushed to declares `bot` and A-1 (then B-1, …) more agents with previews off, so
the preview runs one process while every push loads, plans and exports a repository of
that many agents. Prints p50 and p95 for each and the ratio of the largest to the
smallest (goals: flat within 1.2x; p95 < 1 s).

(3) `--flood`: the controller's RSS and /healthz latency, first idle, then while
`--stalled` unauthenticated connections each declare a 5,000,000-byte body and send
4,900,000 bytes of it slowly (a refused one reconnects at once, as an attacker would),
with a signed delivery every second to show that real deliveries still get through.
Goal: RSS growth < 150 MiB, /healthz < 1 s throughout.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import hashlib
import hmac
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from preview import naming

SECRET = "bench-secret"
GIT = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.com"]
AGENT = Path(__file__).resolve().parents[1] / "examples" / "agents-repo" / "agent" / "server.py"


def manifest(temperature: float) -> str:
    return f"""\
apiVersion: shipyard.dev/v1alpha1
kind: Agent
metadata: {{name: bot}}
spec:
  run: {{command: [python3, agent/server.py]}}
  model: {{provider: fake, name: echo, parameters: {{temperature: {temperature}}}}}
  prompt: {{system: You are a bot.}}
"""


def filler(index: int) -> str:
    """An agent the repository declares but previews do not run (its own prompt file)."""
    return f"""\
apiVersion: shipyard.dev/v1alpha1
kind: Agent
metadata: {{name: agent-{index:04d}}}
spec:
  run: {{command: [python3, agent/server.py]}}
  model: {{provider: fake, name: echo}}
  prompt: {{file: prompts/agent-{index:04d}.md}}
  preview: {{enabled: false}}
"""


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run([*GIT, *args], cwd=cwd, check=True, capture_output=True, text=True)
    return done.stdout.strip()


def commit(work: Path, temperature: float, message: str) -> str:
    (work / "agents" / "bot.yaml").write_text(manifest(temperature))
    git(work, "commit", "-qam", message)
    return git(work, "rev-parse", "HEAD")


def deliver(client: httpx.Client, url: str, branch: str, sha: str) -> int:
    body = json.dumps({"ref": f"refs/heads/{branch}", "after": sha, "deleted": False}).encode()
    signature = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {
        "content-type": "application/json",
        "x-github-event": "push",
        "x-github-delivery": str(uuid.uuid4()),
        "x-hub-signature-256": f"sha256={signature}",
    }
    return client.post(f"{url}/hooks/github", content=body, headers=headers).status_code


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def environment(client: httpx.Client, url: str, name: str) -> dict[str, Any] | None:
    reply = client.get(f"{url}/api/v1/environments/{name}")
    return reply.json() if reply.status_code == 200 else None  # type: ignore[no-any-return]


def preview_name(branch: str) -> str:
    return naming.environment_name(branch, "main")


def wait_commit(client: httpx.Client, url: str, env: str, sha: str, timeout: float) -> float:
    """Seconds until `env` serves `sha` with every agent ready, or raise."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        found = environment(client, url, env)
        if found and found["commit"] == sha and all(a["ready"] for a in found["agents"]):
            return time.perf_counter() - started
        time.sleep(0.01)
    raise TimeoutError(f"{env} did not reach {sha[:12]} within {timeout}s")


def make_repository(root: Path) -> tuple[Path, Path]:
    remote, work = root / "remote.git", root / "work"
    git(root, "init", "-q", "--bare", "--initial-branch=main", str(remote))
    git(root, "init", "-q", "--initial-branch=main", str(work))
    (work / "agents").mkdir()
    (work / "agent").mkdir()
    shutil.copy(AGENT, work / "agent" / "server.py")
    (work / "agents" / "bot.yaml").write_text(manifest(0.1))
    git(work, "add", "-A")
    git(work, "commit", "-qm", "bot")
    git(work, "remote", "add", "origin", str(remote))
    git(work, "push", "-q", "origin", "main")
    return remote, work


def wait_ready(client: httpx.Client, url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if client.get(f"{url}/readyz").status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError("the controller did not become ready")


def latency(client: httpx.Client, url: str, work: Path, pushes: int) -> list[float]:
    """Push, deliver, and time until the preview serves that commit."""
    git(work, "checkout", "-q", "-b", "latency")
    return [one_push(client, url, work, step) for step in range(pushes)]


def one_push(client: httpx.Client, url: str, work: Path, step: int) -> float:
    """Seconds from a push's delivery until its preview serves it, every agent ready."""
    sha = commit(work, round(0.2 + (step % 90) * 0.01, 2), f"push {step}")
    git(work, "push", "-q", "origin", "latency")
    started = time.perf_counter()
    if deliver(client, url, "latency", sha) != 200:
        raise RuntimeError("a signed delivery was refused")
    wait_commit(client, url, preview_name("latency"), sha, timeout=30)
    return time.perf_counter() - started


def add_fillers(client: httpx.Client, url: str, work: Path, fillers: int) -> None:
    """On a new branch `latency`, `fillers` more agents; wait for its preview to start."""
    git(work, "checkout", "-q", "-b", "latency")
    (work / "prompts").mkdir(exist_ok=True)
    for index in range(fillers):
        (work / "agents" / f"agent-{index:04d}.yaml").write_text(filler(index))
        (work / "prompts" / f"agent-{index:04d}.md").write_text(f"You are agent {index}.\n")
    git(work, "add", "-A")
    sha = commit(work, 0.15, f"{fillers} more agents")
    git(work, "push", "-q", "origin", "latency")
    if deliver(client, url, "latency", sha) != 200:
        raise RuntimeError("a signed delivery was refused")
    wait_commit(client, url, preview_name("latency"), sha, timeout=120)


def burst(
    client: httpx.Client, url: str, work: Path, branches: int, deliveries: int
) -> dict[str, Any]:
    """Every delivery at once; then every branch must reach its newest commit."""
    per_branch = max(1, deliveries // branches)
    newest: dict[str, str] = {}
    sent: list[tuple[str, str]] = []
    for index in range(branches):
        branch = f"burst/{index:02d}"
        git(work, "checkout", "-q", "-b", branch, "main")
        for step in range(per_branch):
            sha = commit(work, round(0.3 + step * 0.01, 2), f"{branch} {step}")
            sent.append((branch, sha))
        newest[branch] = sha
    git(work, "push", "-q", "origin", *newest)
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        codes = list(pool.map(lambda delivery: deliver(client, url, *delivery), sent))
    at_newest = 0
    for branch, sha in newest.items():
        wait_commit(client, url, preview_name(branch), sha, timeout=180)
        at_newest += 1
    return {
        "deliveries": len(sent),
        "accepted": sum(code == 200 for code in codes),
        "branches": len(newest),
        "branches_at_newest_commit": at_newest,
        "burst_seconds": time.perf_counter() - started,
    }


def start_controller(root: Path, branches: int) -> tuple[subprocess.Popen[bytes], str, Path]:
    """A `shipyard serve` on a new repository; returns it, its URL and the work clone."""
    root.mkdir(parents=True, exist_ok=True)
    remote, work = make_repository(root)
    port = free_port()
    log = (root / "controller.log").open("wb")
    controller = subprocess.Popen(
        [str(Path(sys.executable).parent / "shipyard"), "serve", "--repo", str(remote),
         "--state-dir", str(root / "state"), "--port", str(port), "--poll-interval", "1h",
         "--webhook-secret", SECRET, "--max-previews", str(branches + 5)],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    log.close()  # the child has its own copy
    return controller, f"http://127.0.0.1:{port}", work


def stop_controller(controller: subprocess.Popen[bytes]) -> None:
    controller.send_signal(signal.SIGTERM)
    controller.wait(timeout=60)


def percentiles(seconds: list[float]) -> dict[str, float]:
    p95 = statistics.quantiles(seconds, n=20)[18] if len(seconds) >= 2 else seconds[0]
    return {"pushes": len(seconds), "p50_s": statistics.median(seconds), "p95_s": p95}


def run(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    controller, url, work = start_controller(root, args.branches)
    client = httpx.Client(timeout=30, trust_env=False)
    try:
        wait_ready(client, url)
        seconds = latency(client, url, work, args.pushes)
        result = burst(client, url, work, args.branches, args.deliveries)
    finally:
        stop_controller(controller)
        client.close()
    return {**percentiles(seconds), **result}


def flatness(args: argparse.Namespace, root: Path) -> list[dict[str, Any]]:
    """Push → preview for each size in `--agents`, one controller each, all running at
    once and pushed to in turn, so a busy moment of the machine hits every size alike."""
    sites = []
    client = httpx.Client(timeout=30, trust_env=False)
    try:
        for agents in args.agents:
            controller, url, work = start_controller(root / f"agents-{agents}", 0)
            sites.append((agents, controller, url, work))
        for agents, _, url, work in sites:
            wait_ready(client, url)
            add_fillers(client, url, work, agents - 1)
        seconds: dict[int, list[float]] = {agents: [] for agents, *_ in sites}
        for step in range(args.pushes):
            for agents, _, url, work in sites:
                seconds[agents].append(one_push(client, url, work, step))
    finally:
        for _, controller, *_ in sites:
            stop_controller(controller)
        client.close()
    return [{"agents": agents, **percentiles(seconds[agents])} for agents, *_ in sites]


def print_flatness(rows: list[dict[str, Any]]) -> None:
    print(f"push → preview serving the new version, {rows[0]['pushes']} pushes each, "
          "sizes pushed to in turn, poller at 1h:")  # fmt: skip
    for row in rows:
        print(f"  {row['agents']:>5} agents: p50 {row['p50_s'] * 1000:.0f} ms, "
              f"p95 {row['p95_s'] * 1000:.0f} ms")  # fmt: skip
    small, large = rows[0], rows[-1]
    ratio = large["p50_s"] / small["p50_s"]
    worst = max(row["p95_s"] for row in rows)
    print(f"  p50 at {large['agents']} vs {small['agents']} agents: {ratio:.2f}x "
          f"(goal: flat within 1.2x: {'met' if ratio <= 1.2 else 'NOT met'})")  # fmt: skip
    verdict = "met" if worst < 1 else "NOT met"
    print(f"  worst p95 {worst * 1000:.0f} ms (goal < 1000 ms: {verdict})")


DECLARED = 5_000_000
SENT = 4_900_000


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def stalled_upload(
    port: int, seconds: float, stop: asyncio.Event, counts: dict[str, int]
) -> None:
    """One attacker connection, renewed whenever the server answers or hangs up."""
    headers = (
        f"POST /hooks/github HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n"
        f"content-type: application/json\r\nx-github-event: push\r\n"
        f"x-hub-signature-256: sha256={'0' * 64}\r\ncontent-length: {DECLARED}\r\n\r\n"
    ).encode()
    piece = b"x" * 16384
    pause = seconds * len(piece) / SENT
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            counts["connect_failed"] = counts.get("connect_failed", 0) + 1
            await asyncio.sleep(0.1)
            continue
        answer = asyncio.ensure_future(reader.read(256))
        try:
            writer.write(headers)
            sent = 0
            while sent < SENT and not answer.done() and not stop.is_set():
                writer.write(piece)
                await writer.drain()
                sent += len(piece)
                await asyncio.sleep(pause)
            reply = await asyncio.wait_for(answer, timeout=1) if not stop.is_set() else b""
            status = reply.split(b" ", 2)[1].decode() if reply.startswith(b"HTTP/") else "closed"
        except (TimeoutError, OSError):
            status = "closed"
        finally:
            answer.cancel()
            writer.close()
        counts[status] = counts.get(status, 0) + 1
        await asyncio.sleep(0.05)


async def observe(url: str, pid: int, seconds: float, stop: asyncio.Event | None) -> dict[str, Any]:
    """RSS every 0.5 s, /healthz every 0.25 s, a signed ping every 1 s, for `seconds`."""
    rss: list[float] = []
    descriptors: list[int] = []
    healthz: list[float] = []
    delivered = {"ok": 0, "refused": 0}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    async with httpx.AsyncClient(timeout=30, trust_env=False) as client:
        tick = 0
        while loop.time() < deadline:
            started = time.perf_counter()
            await client.get(f"{url}/healthz")
            healthz.append(time.perf_counter() - started)
            if tick % 2 == 0:
                rss.append(rss_mib(pid))
                descriptors.append(len(os.listdir(f"/proc/{pid}/fd")))
            if tick % 4 == 0:
                body = json.dumps({"zen": "Keep it logically awesome."}).encode()
                signature = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
                reply = await client.post(
                    f"{url}/hooks/github",
                    content=body,
                    headers={"x-github-event": "ping", "x-hub-signature-256": f"sha256={signature}",
                             "x-github-delivery": str(uuid.uuid4())},
                )  # fmt: skip
                delivered["ok" if reply.status_code == 200 else "refused"] += 1
            tick += 1
            await asyncio.sleep(0.25)
    return {
        "rss_mib_max": max(rss),
        "rss_mib_median": statistics.median(rss),
        "open_files_max": max(descriptors),
        "healthz_s_max": max(healthz),
        "healthz_s_p50": statistics.median(healthz),
        "signed_deliveries_ok": delivered["ok"],
        "signed_deliveries_refused": delivered["refused"],
    }


async def flood_measure(url: str, port: int, pid: int, args: argparse.Namespace) -> dict[str, Any]:
    idle = await observe(url, pid, 5.0, None)
    stop = asyncio.Event()
    counts: dict[str, int] = {}
    attackers = [
        asyncio.ensure_future(stalled_upload(port, args.flood_seconds, stop, counts))
        for _ in range(args.stalled)
    ]
    try:
        loaded = await observe(url, pid, args.flood_seconds, stop)
    finally:
        stop.set()
        await asyncio.gather(*attackers, return_exceptions=True)
    return {"idle": idle, "flood": loaded, "attacker_answers": counts}


def flood(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    remote, _ = make_repository(root)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (root / "controller.log").open("wb")
    controller = subprocess.Popen(
        [str(Path(sys.executable).parent / "shipyard"), "serve", "--repo", str(remote),
         "--state-dir", str(root / "state"), "--port", str(port), "--poll-interval", "1h",
         "--webhook-secret", SECRET],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    client = httpx.Client(timeout=30, trust_env=False)
    try:
        wait_ready(client, url)
        result = asyncio.run(flood_measure(url, port, controller.pid, args))
    finally:
        controller.send_signal(signal.SIGTERM)
        controller.wait(timeout=60)
        client.close()
        log.close()
    text = (root / "controller.log").read_text(errors="replace")
    result["log_lines"] = text.count("\n")
    result["tracebacks"] = text.count("Traceback")
    result["stalled"] = args.stalled
    return result


def print_flood(result: dict[str, Any]) -> None:
    idle, loaded = result["idle"], result["flood"]
    growth = loaded["rss_mib_max"] - idle["rss_mib_max"]
    print(
        f"{result['stalled']} stalled unauthenticated uploads "
        f"({DECLARED:,} bytes declared, {SENT:,} sent slowly), side by side with idle:"
    )
    print(
        f"  RSS       idle {idle['rss_mib_max']:.0f} MiB, flood max {loaded['rss_mib_max']:.0f} "
        f"MiB: growth {growth:.0f} MiB (goal < 150 MiB: {'met' if growth < 150 else 'NOT met'})"
    )
    print(
        f"  /healthz  idle p50 {idle['healthz_s_p50'] * 1000:.1f} ms max "
        f"{idle['healthz_s_max'] * 1000:.1f} ms; flood p50 {loaded['healthz_s_p50'] * 1000:.1f} "
        f"ms max {loaded['healthz_s_max'] * 1000:.1f} ms, ratio of max "
        f"{loaded['healthz_s_max'] / idle['healthz_s_max']:.1f}x "
        f"(goal < 1 s: {'met' if loaded['healthz_s_max'] < 1 else 'NOT met'})"
    )
    print(f"  open files: idle max {idle['open_files_max']}, flood max {loaded['open_files_max']}")
    print(
        f"  signed deliveries during the flood: {loaded['signed_deliveries_ok']} accepted, "
        f"{loaded['signed_deliveries_refused']} refused"
    )
    print(f"  attackers were answered: {result['attacker_answers']}")
    print(f"  controller log: {result['log_lines']} lines, {result['tracebacks']} tracebacks")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pushes", type=int, default=50)
    parser.add_argument("--branches", type=int, default=50)
    parser.add_argument("--deliveries", type=int, default=1000)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--agents", type=int, nargs="+", help="latency at each repository size")
    parser.add_argument("--flood", action="store_true", help="measure under stalled uploads")
    parser.add_argument("--stalled", type=int, default=200)
    parser.add_argument("--flood-seconds", type=float, default=30.0)
    args = parser.parse_args()
    os.environ.setdefault("GIT_CONFIG_GLOBAL", os.devnull)
    root = Path(tempfile.mkdtemp(prefix="shipyard-webhook-bench-"))
    try:
        if args.agents:
            rows = flatness(args, root)
            if args.json:
                print(json.dumps(rows, indent=2))
            else:
                print_flatness(rows)
            return 0
        result = flood(args, root) if args.flood else run(args, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    if args.flood:
        print_flood(result)
        return 0
    print(f"push → preview serving the new version, {result['pushes']} pushes, poller at 1h:")
    print(f"  p50 {result['p50_s'] * 1000:.0f} ms, p95 {result['p95_s'] * 1000:.0f} ms "
          f"(goal: p50 < 1000 ms: {'met' if result['p50_s'] < 1 else 'NOT met'})")  # fmt: skip
    print(f"burst: {result['deliveries']} deliveries across {result['branches']} branches, "
          f"{result['accepted']} accepted, {result['branches_at_newest_commit']} branches at "
          f"their newest commit, {result['burst_seconds']:.1f} s")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
