"""Benchmark webhook → live preview latency, and a burst of 1,000 deliveries.

Why this exists: with the poller at one hour, a push must still reach its preview in
about a second, and a burst of deliveries must neither be lost nor leave any branch
behind its newest commit. This runs a real `shipyard serve` (local target, real agent
processes) on loopback with a real git repository:

    python bench/webhook.py [--pushes 50] [--branches 50] [--deliveries 1000] [--json]

(1) latency: `--pushes` times, commit a change to one agent on a branch, push, deliver
a signed GitHub push event, and time until the router serves the new version; prints
p50 and p95. (2) burst: `--branches` branches with `--deliveries / --branches` commits
each, every delivery sent concurrently; then checks every branch's preview ends at its
newest commit and every delivery was accepted.
"""

from __future__ import annotations

import argparse
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
    seconds = []
    git(work, "checkout", "-q", "-b", "latency")
    for step in range(pushes):
        sha = commit(work, round(0.2 + (step % 90) * 0.01, 2), f"push {step}")
        git(work, "push", "-q", "origin", "latency")
        started = time.perf_counter()
        if deliver(client, url, "latency", sha) != 200:
            raise RuntimeError("a signed delivery was refused")
        wait_commit(client, url, preview_name("latency"), sha, timeout=30)
        seconds.append(time.perf_counter() - started)
    return seconds


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


def run(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    remote, work = make_repository(root)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (root / "controller.log").open("wb")
    controller = subprocess.Popen(
        [str(Path(sys.executable).parent / "shipyard"), "serve", "--repo", str(remote),
         "--state-dir", str(root / "state"), "--port", str(port), "--poll-interval", "1h",
         "--webhook-secret", SECRET, "--max-previews", str(args.branches + 5)],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    client = httpx.Client(timeout=30, trust_env=False)
    try:
        wait_ready(client, url)
        seconds = latency(client, url, work, args.pushes)
        result = burst(client, url, work, args.branches, args.deliveries)
    finally:
        controller.send_signal(signal.SIGTERM)
        controller.wait(timeout=60)
        client.close()
        log.close()
    return {
        "pushes": len(seconds),
        "p50_s": statistics.median(seconds),
        "p95_s": statistics.quantiles(seconds, n=20)[18] if len(seconds) >= 2 else seconds[0],
        **result,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pushes", type=int, default=50)
    parser.add_argument("--branches", type=int, default=50)
    parser.add_argument("--deliveries", type=int, default=1000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("GIT_CONFIG_GLOBAL", os.devnull)
    root = Path(tempfile.mkdtemp(prefix="shipyard-webhook-bench-"))
    try:
        result = run(args, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if args.json:
        print(json.dumps(result, indent=2))
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
