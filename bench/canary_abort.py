"""Benchmark how fast a failing canary loses its traffic, on the local target.

Why this exists: a canary that answers 500 hurts users for as long as it keeps its
share of traffic. The goal (issue 16) is traffic fully back on stable within 2 analysis
intervals of the canary's first bad response. This script runs a real `shipyard serve`
on a temporary git remote, pushes a canary at 50 % that answers 500 with an `errorRate`
analysis, sends requests through the router without pause, and prints the time from the
first 500 to the last request answered by the canary, in seconds and in intervals:

    python bench/canary_abort.py [--interval 1] [--min-requests 10] [--runs 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

# The test harness (a real `shipyard serve` fed by a real git remote) lives with the tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.gitrepos import Upstream
from tests.integration.controller_harness import Shipyard, wait_for
from tests.integration.test_canary_rollouts import AGENT, manifest


def one_run(root: Path, interval: float, min_requests: int) -> dict[str, float]:
    os.environ.setdefault("GIT_CONFIG_GLOBAL", os.devnull)
    os.environ.setdefault("GIT_CONFIG_NOSYSTEM", "1")
    upstream = Upstream(root / "upstream")
    upstream.commit(
        {"agent/canary_agent.py": AGENT, "agents/alpha.yaml": manifest()}, branch="main"
    )
    upstream.push("main")
    shipyard = Shipyard(upstream.bare, root / "state").start()
    try:
        stable = wait_for(lambda: shipyard.serving("alpha", "production"))["version"]
        rollout = (
            "    strategy: Canary\n    steps:\n      - setWeight: 50\n      - pause: {}\n"
            f"    analysis:\n      interval: {int(interval)}s\n"
            f"      minRequests: {min_requests}\n      errorRate:\n        max: 0.05\n"
        )
        upstream.commit({"agents/alpha.yaml": manifest(answer=500, rollout=rollout)})
        upstream.push("main")
        host = {"host": f"alpha--production.localhost:{shipyard.port}"}
        first_bad: float | None = None
        last_canary: float | None = None
        stable_since: float | None = None
        requests = 0
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            response = shipyard.http.get(shipyard.api("/"), headers=host)
            requests += 1
            now = time.monotonic()
            if response.headers.get("x-shipyard-version") != stable:
                first_bad = first_bad if first_bad is not None else now
                last_canary = now
                stable_since = None
            elif first_bad is not None:
                stable_since = stable_since if stable_since is not None else now
                if now - stable_since > 3 * interval:  # settled: the canary is gone
                    break
        if first_bad is None or last_canary is None:
            raise SystemExit("the canary never answered a request")
        seconds = last_canary - first_bad
        return {"seconds": seconds, "intervals": seconds / interval, "requests": requests}
    finally:
        shipyard.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--interval", type=float, default=1.0, help="analysis interval (s)")
    parser.add_argument("--min-requests", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    arguments = parser.parse_args()
    results = []
    for run in range(arguments.runs):
        with tempfile.TemporaryDirectory(prefix="shipyard-canary-bench-") as directory:
            results.append(one_run(Path(directory), arguments.interval, arguments.min_requests))
        if not arguments.json:
            latest = results[-1]
            print(
                f"run {run + 1}: first 500 → last canary answer {latest['seconds']:.2f}s "
                f"= {latest['intervals']:.2f} analysis intervals "
                f"({latest['requests']:.0f} requests)"
            )
    worst = max(result["intervals"] for result in results)
    summary = {
        "interval_seconds": arguments.interval,
        "median_intervals": statistics.median(r["intervals"] for r in results),
        "worst_intervals": worst,
        "goal_intervals": 2.0,
        "met": worst < 2.0,
    }
    print(json.dumps(summary) if arguments.json else f"summary: {summary}")


if __name__ == "__main__":
    main()
