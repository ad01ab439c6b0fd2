"""Benchmark the preview cap with many branches: what starts, and what production waits for.

Why this exists: with 500 branches and `--max-previews 3`, the first sync must start 3
previews, not 500, and a production push that evicts a preview must not wait for the
teardown. This script drives the real controller, git mirror, store and local agent
processes, side by side in one run:

    python bench/preview_cap.py [--branches 500] [--cap 3]

(a) the first sync of a repository with only `main`, then of one with `--branches`
branches: seconds each, the ratio, and the previews that ever started;
(b) a production push alone, then a production push together with a new branch that
evicts a preview whose agent ignores SIGTERM (its stop takes the whole grace period):
seconds until production serves the new version, and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

# The git helpers live with the tests; the repository root makes them importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from controller.reconciler.config import ControllerConfig
from controller.reconciler.controller import Controller
from controller.source.mirror import Mirror
from controller.store.sqlite import Store
from controller.targets.local.target import LocalTarget
from preview import naming
from tests.gitrepos import Upstream
from tests.integration.controller_harness import manifest, seed

STUBBORN = '["sh", "-c", "trap \'\' TERM; python3 agent/server.py; sleep 60"]'


def branches(upstream: Upstream, count: int) -> None:
    for index in range(count):
        upstream.git("checkout", "--quiet", "main")
        upstream.commit(
            {"agents/alpha.yaml": manifest("alpha", temperature=round(0.001 * (index + 1), 3))},
            message=f"topic {index}",
            branch=f"topic-{index:04d}",
        )
    upstream.push("--all")


async def first_sync(root: Path, count: int, cap: int) -> tuple[float, int]:
    upstream = Upstream(root / "upstream")
    seed(upstream, "alpha")
    branches(upstream, count)
    config = ControllerConfig(
        repo=str(upstream.bare), state_dir=root / "state", poll_interval=3600, max_previews=cap
    )
    store = Store(config.database)
    controller = Controller(config, Mirror(config.repo, config.mirror_dir), store, LocalTarget())
    try:
        started = time.perf_counter()
        await controller.sync_once()
        await controller.wait_idle()
        seconds = time.perf_counter() - started
        previews = {r.environment for r in store.rollouts() if r.environment != naming.PRODUCTION}
        return seconds, len(previews)
    finally:
        await controller.close()
        store.close()


async def production_push(root: Path, evict: bool) -> float:
    upstream = Upstream(root / "upstream")
    seed(upstream, "alpha")
    upstream.commit(
        {"agents/alpha.yaml": manifest("alpha", temperature=0.4, command=STUBBORN)},
        branch="stubborn",
    )
    upstream.push("stubborn")
    config = ControllerConfig(
        repo=str(upstream.bare), state_dir=root / "state", poll_interval=3600, max_previews=1
    )
    store = Store(config.database)
    controller = Controller(config, Mirror(config.repo, config.mirror_dir), store, LocalTarget())
    try:
        await controller.sync_once()
        await controller.wait_idle()
        before = controller.target.running(naming.PRODUCTION)["alpha"]
        upstream.git("checkout", "--quiet", "main")
        upstream.commit({"agents/alpha.yaml": manifest("alpha", temperature=0.3)}, "warmer")
        refs = ["main"]
        if evict:
            upstream.commit({"agents/alpha.yaml": manifest("alpha", temperature=0.6)}, branch="new")
            refs.append("new")
        upstream.push(*refs)
        started = time.perf_counter()
        await controller.sync_once()
        while controller.target.running(naming.PRODUCTION).get("alpha") == before:
            await asyncio.sleep(0.01)
        seconds = time.perf_counter() - started
        await controller.wait_idle()
        return seconds
    finally:
        await controller.close()
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--branches", type=int, default=500)
    parser.add_argument("--cap", type=int, default=3)
    options = parser.parse_args()
    os.environ.setdefault("GIT_CONFIG_GLOBAL", os.devnull)
    with tempfile.TemporaryDirectory(prefix="shipyard-bench-") as temporary:
        root = Path(temporary)
        alone, _ = asyncio.run(first_sync(root / "a", 0, options.cap))
        many, started = asyncio.run(first_sync(root / "b", options.branches, options.cap))
        print(f"(a) first sync, main only:            {alone:6.2f} s")
        print(
            f"    first sync, {options.branches} branches, cap {options.cap}: {many:6.2f} s "
            f"({many / alone:.1f}x), previews started: {started}"
        )
        plain = asyncio.run(production_push(root / "c", evict=False))
        evicting = asyncio.run(production_push(root / "d", evict=True))
        print(f"(b) production push alone:             {plain:6.2f} s to serve")
        print(
            f"    production push + slow eviction:     {evicting:6.2f} s to serve "
            f"({evicting / plain:.1f}x; the evicted agent takes 5 s to stop)"
        )


if __name__ == "__main__":
    main()
