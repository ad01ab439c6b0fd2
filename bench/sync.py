"""Benchmark the reconcile loop at 100 and 1,000 agents with 50 branches.

Why this exists: a poll that finds nothing new must not cost more as a repository
grows (it should be O(branches), not O(agents)), and a push that changes one agent
must reach that agent in well under a second even with 1,000 agents (Argo CD polls
every three minutes by default). This script measures both, side by side, for two
repository sizes in one run, and prints the ratios:

    python bench/sync.py [--agents 100 1000] [--branches 50] [--repeat 5] [--json]

Goals (issue: performance at scale): a one-agent change at 1,000 agents in ≤ 150 ms,
costing O(changed files): the script prints the change at each size and the ratio of the
largest to the smallest, and, side by side, the three ways of putting a commit's files
on disk: a whole `git archive` + extraction (before the blob store), a whole tree of
hard links (before spare trees), and `Mirror.export` from the spare of the previous
commit (what a push pays now).

It runs the real controller, git mirror, manifest loader, planner and SQLite store on a
real git repository. The target is a stand-in that turns every version healthy at once
(starting 50,000 real agent processes is not what is being measured), so the figures
are the controller's own cost: fetch, load, plan, record.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

import git as gitpython

from controller.reconciler.config import ControllerConfig
from controller.reconciler.controller import Controller
from controller.source import blob_store, listing
from controller.source.mirror import BLOB_STORE, Mirror
from controller.store.sqlite import Store
from controller.targets.local.processes import LaunchSpec
from controller.targets.local.target import DeployResult, Serving

GIT = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.com"]


class InstantTarget:
    """Every version is healthy the moment it is deployed; counts the deploys."""

    def __init__(self) -> None:
        self.serving_now: dict[tuple[str, str], str] = {}
        self.deploys = 0

    async def deploy(self, launch: LaunchSpec, deadline_seconds: float) -> DeployResult:
        self.deploys += 1
        self.serving_now[(launch.environment, launch.agent)] = launch.version
        return DeployResult(True)

    async def remove(self, environment: str, agent: str) -> None:
        self.serving_now.pop((environment, agent), None)

    def running(self, environment: str) -> dict[str, str]:
        return {a: v for (e, a), v in self.serving_now.items() if e == environment}

    def environments(self) -> set[str]:
        return {e for e, _ in self.serving_now}

    def serving(self) -> list[Serving]:
        return [Serving(a, e, v, 0, "Healthy") for (e, a), v in self.serving_now.items()]

    def process(self, environment: str, agent: str) -> None:
        return None

    async def close(self) -> None:
        self.serving_now.clear()


def manifest(index: int, temperature: float = 0.2) -> str:
    return f"""\
apiVersion: shipyard.dev/v1alpha1
kind: Agent
metadata:
  name: agent-{index:04d}
  labels: {{team: team-{index % 8}}}
spec:
  run:
    command: ["python3", "agent.py"]
  model:
    provider: fake
    name: echo
    parameters: {{temperature: {temperature}, maxTokens: 512}}
  prompt:
    file: prompts/agent-{index:04d}.md
"""


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run([*GIT, *args], cwd=cwd, check=True, capture_output=True, text=True)
    return done.stdout.strip()


def make_repository(root: Path, agents: int, branches: int) -> tuple[Path, Path]:
    remote, work = root / "remote.git", root / "work"
    git(root, "init", "-q", "--bare", "--initial-branch=main", str(remote))
    git(root, "init", "-q", "--initial-branch=main", str(work))
    (work / "agents").mkdir()
    (work / "prompts").mkdir()
    for index in range(agents):
        (work / "agents" / f"agent-{index:04d}.yaml").write_text(manifest(index))
        (work / "prompts" / f"agent-{index:04d}.md").write_text(f"You are agent {index}.\n" * 8)
    git(work, "add", "-A")
    git(work, "commit", "-qm", "agents")
    git(work, "remote", "add", "origin", str(remote))
    git(work, "push", "-q", "origin", "main")
    for branch in range(branches):
        git(work, "checkout", "-q", "-b", f"feature/{branch:02d}", "main")
        changed = branch % agents  # more branches than agents: some change the same one
        (work / "agents" / f"agent-{changed:04d}.yaml").write_text(manifest(changed, 0.9))
        git(work, "commit", "-qam", f"branch {branch}")
    git(work, "checkout", "-q", "main")
    git(work, "push", "-q", "origin", "--all")
    return remote, work


async def measure(agents: int, branches: int, repeat: int, root: Path) -> dict[str, Any]:
    remote, work = make_repository(root, agents, branches)
    config = ControllerConfig(
        repo=str(remote), state_dir=root / "state", poll_interval=3600, max_previews=branches
    )
    store = Store(config.database)
    target = InstantTarget()
    controller = Controller(config, Mirror(config.repo, config.mirror_dir), store, target)
    started = time.perf_counter()
    await controller.sync_once()
    await controller.wait_idle()
    first_sync = time.perf_counter() - started
    environments = len(controller.statuses)

    noop = []
    for _ in range(repeat):
        before = target.deploys
        started = time.perf_counter()
        await controller.sync_once()
        await controller.wait_idle()
        noop.append(time.perf_counter() - started)
        assert target.deploys == before, "a poll with nothing new deployed something"

    change = []
    changed: list[str] = []
    for step in range(repeat):
        (work / "agents" / "agent-0000.yaml").write_text(manifest(0, round(0.3 + step * 0.1, 2)))
        git(work, "commit", "-qam", f"change one agent ({step})")
        git(work, "push", "-q", "origin", "main")
        changed.append(git(work, "rev-parse", "HEAD"))
        before = target.deploys
        started = time.perf_counter()
        await controller.sync_once()
        await controller.wait_idle()
        change.append(time.perf_counter() - started)
        assert target.deploys == before + 1, f"expected one deploy, got {target.deploys - before}"
    exports = _exports_side_by_side(config, root / "archives", changed)
    await controller.close()
    store.close()
    return {
        **exports,
        "agents": agents,
        "branches": branches,
        "environments": environments,
        "first_sync_s": first_sync,
        "noop_poll_ms": statistics.median(noop) * 1000,
        "one_agent_change_ms": statistics.median(change) * 1000,
    }


def _exports_side_by_side(
    config: ControllerConfig, scratch: Path, commits: list[str]
) -> dict[str, float]:
    """Each one-agent commit's files on disk, three ways, alternating: a whole `git
    archive` + extraction, a whole tree of links into the blob store, and `Mirror.export`
    once the spare of the commit before is ready (as between two pushes)."""
    mirror_dir = config.mirror_dir
    mirror = Mirror(str(mirror_dir), mirror_dir)
    repo = gitpython.Repo(mirror_dir)
    exports = config.checkouts_dir
    mirror.export(git(mirror_dir, "rev-parse", f"{commits[0]}^"), exports / "bench-base")
    archive_runs, links_runs, spare_runs = [], [], []
    for index, sha in enumerate(commits):
        started = time.perf_counter()
        whole = scratch / f"archive-{index}"
        whole.mkdir(parents=True)
        with tempfile.TemporaryFile() as archive:
            subprocess.run(["git", "archive", sha], cwd=mirror_dir, stdout=archive, check=True)
            archive.seek(0)
            with tarfile.open(fileobj=archive) as tar:
                tar.extractall(whole, filter="data")
        archive_runs.append(time.perf_counter() - started)
        files = listing.read(repo, repo.commit(sha).tree.hexsha).files
        started = time.perf_counter()
        blob_store.materialize(repo, files, exports / f"links-{index}", exports / BLOB_STORE)
        links_runs.append(time.perf_counter() - started)
        mirror.settle()  # the spare of the commit before, built after its export
        started = time.perf_counter()
        mirror.export(sha, exports / f"bench-{index}")  # a new directory, as a push gets
        spare_runs.append(time.perf_counter() - started)
    repo.close()
    mirror.close()
    return {
        "archive_extract_ms": statistics.median(archive_runs) * 1000,
        "links_ms": statistics.median(links_runs) * 1000,
        "export_ms": statistics.median(spare_runs) * 1000,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--branches", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("GIT_CONFIG_GLOBAL", os.devnull)
    results = []
    for count in args.agents:
        root = Path(tempfile.mkdtemp(prefix=f"shipyard-bench-{count}-"))
        try:
            results.append(asyncio.run(measure(count, args.branches, args.repeat, root)))
        finally:
            shutil.rmtree(root, ignore_errors=True)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"{'agents':>7} {'envs':>5} {'first sync':>11} {'no-op poll':>11} {'1-agent change':>15}")
    for row in results:
        print(
            f"{row['agents']:>7} {row['environments']:>5} {row['first_sync_s']:>10.1f}s "
            f"{row['noop_poll_ms']:>9.1f}ms {row['one_agent_change_ms']:>13.1f}ms"
        )
    for row in results:
        print(
            f"{row['agents']} agents, a one-agent commit's files on disk: whole archive + "
            f"extraction {row['archive_extract_ms']:.1f} ms, whole tree of links "
            f"{row['links_ms']:.1f} ms, Mirror.export from a spare {row['export_ms']:.1f} ms "
            f"({row['links_ms'] / row['export_ms']:.1f}x faster than links)"
        )
    if len(results) >= 2:
        small, large = results[0], results[-1]
        growth = large["noop_poll_ms"] / small["noop_poll_ms"]
        print(
            f"no-op poll at {large['agents']} vs {small['agents']} agents: {growth:.2f}x "
            "(goal: does not grow with agents)"
        )
        change = large["one_agent_change_ms"]
        print(
            f"one-agent change at {large['agents']} vs {small['agents']} agents: "
            f"{change / small['one_agent_change_ms']:.2f}x; at {large['agents']}: {change:.0f} ms "
            f"(goal ≤ 150 ms: {'met' if change <= 150 else 'NOT met'})"
        )
        exported = large["export_ms"] / small["export_ms"]
        linked = large["links_ms"] / small["links_ms"]
        print(
            f"Mirror.export at {large['agents']} vs {small['agents']} agents: {exported:.2f}x "
            f"(a whole tree of links: {linked:.2f}x; O(changed files) is flat)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
