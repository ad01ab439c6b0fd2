"""What the reconciler promises, tried in-process with real git, store and agent processes.

The preview cap holds before anything starts; production never waits behind a preview's
teardown; only branches with work of their own count as merged; a commit that empties
main does not stop production unless allowed; undo and history hold however long the
history grows.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from controller.errors import NotFound
from controller.reconciler.controller import Controller
from controller.store.records import RolloutResult
from preview import naming
from tests.gitrepos import Upstream
from tests.integration.controller_harness import Shipyard, manifest, preview_of, seed, wait_for
from tests.integration.test_preview_lifecycle import Clock, reasons, run, sync

PRODUCTION = naming.PRODUCTION

# Ignores SIGTERM after the agent itself exits: stopping it lasts the whole grace period.
STUBBORN = '["sh", "-c", "trap \'\' TERM; python3 agent/server.py; sleep 60"]'


def previews_started(controller: Controller) -> set[str]:
    """Every preview that ever had a rollout, from the store's full record."""
    return {r.environment for r in controller.store.rollouts() if r.environment != PRODUCTION}


def desired(controller: Controller, agent: str, environment: str = PRODUCTION) -> str:
    version = controller.statuses[environment].agents[agent].desired_version
    assert version is not None
    return version


async def wait_until(condition: object, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


# The preview cap ---------------------------------------------------------------------------


def test_cap_holds_on_the_first_sync_and_keeps_the_newest_pushes(
    upstream: Upstream, tmp_path: Path
) -> None:
    seed(upstream, "alpha")
    branches = [f"topic-{index:02d}" for index in range(12)]
    for index, branch in enumerate(branches):
        upstream.git("checkout", "--quiet", "main")
        upstream.commit(
            {"agents/alpha.yaml": manifest("alpha", temperature=0.01 * (index + 1))},
            message=f"work on {branch}",
            branch=branch,
            date=f"2026-01-01T00:{index:02d}:00Z",
        )
    upstream.push("--all")
    newest = {preview_of(branch) for branch in branches[-3:]}

    async def scenario(controller: Controller, clock: Clock) -> None:
        await sync(controller)
        assert previews_started(controller) == newest
        assert controller.target.environments() == newest | {PRODUCTION}
        assert set(controller.statuses) == newest | {PRODUCTION}
        waiting = preview_of(branches[0])
        assert reasons(controller, waiting) == ["PreviewLimitReached"]
        event = controller.store.events(environment=waiting)[0]
        assert event.message.startswith("not started: preview limit 3 reached")
        # The next sync neither starts them nor repeats itself.
        await sync(controller)
        assert previews_started(controller) == newest
        assert reasons(controller, waiting) == ["PreviewLimitReached"]
        # A new push to a waiting branch takes a slot from the preview idle longest.
        clock.now += 60
        upstream.git("checkout", "--quiet", branches[0])
        upstream.commit({"agents/alpha.yaml": manifest("alpha", temperature=0.9)})
        upstream.push(branches[0])
        await sync(controller)
        evicted = preview_of(branches[-3])
        assert controller.target.environments() == (newest - {evicted}) | {waiting, PRODUCTION}
        assert reasons(controller, evicted)[-1] == "Evicted"

    run(upstream, tmp_path, scenario, max_previews=3)


def test_production_rolls_out_while_an_evicted_preview_is_still_stopping(
    upstream: Upstream, tmp_path: Path
) -> None:
    seed(upstream, "alpha")
    upstream.commit(
        {"agents/alpha.yaml": manifest("alpha", temperature=0.4, command=STUBBORN)},
        branch="stubborn",
    )
    upstream.push("stubborn")
    stubborn = preview_of("stubborn")

    async def scenario(controller: Controller, clock: Clock) -> None:
        await sync(controller)
        assert controller.target.running(stubborn)
        clock.now += 60
        upstream.git("checkout", "--quiet", "main")
        upstream.commit({"agents/alpha.yaml": manifest("alpha", temperature=0.3)}, "warmer")
        upstream.commit({"agents/alpha.yaml": manifest("alpha", temperature=0.6)}, branch="newer")
        upstream.push("main", "newer")
        await controller.sync_once()

        def production_started() -> bool:
            events = controller.store.events(environment=PRODUCTION)
            return [e.reason for e in events].count("RolloutStarted") == 2

        await wait_until(production_started, "production's second rollout to start")
        await controller.wait_idle()
        events = controller.store.events()
        started = [
            e.id for e in events if e.environment == PRODUCTION and e.reason == "RolloutStarted"
        ][1:]
        evicted = [e.id for e in events if e.environment == stubborn and e.reason == "Evicted"]
        assert evicted, [(e.environment, e.reason) for e in events]
        # The teardown lasted the stubborn agent's grace period; production did not wait.
        assert started[0] < evicted[0]
        assert controller.target.running(stubborn) == {}
        assert controller.target.running(preview_of("newer"))

    run(upstream, tmp_path, scenario, max_previews=1)


# Merges ------------------------------------------------------------------------------------


def test_only_a_branch_with_work_of_its_own_counts_as_merged(
    upstream: Upstream, tmp_path: Path
) -> None:
    seed(upstream, "alpha")
    upstream.commit({"agents/alpha.yaml": manifest("alpha", temperature=0.5)}, branch="feature")
    upstream.git("checkout", "--quiet", "main")
    upstream.git("branch", "follower")
    upstream.push("feature", "follower")

    async def scenario(controller: Controller, clock: Clock) -> None:
        await sync(controller)
        assert controller.target.running(preview_of("feature"))
        assert controller.target.running(preview_of("follower"))
        upstream.git("checkout", "--quiet", "main")
        upstream.git("merge", "--quiet", "--no-ff", "-m", "Merge feature", "feature")
        upstream.git("branch", "fresh")  # cut at the new tip, pushed with it
        upstream.git("branch", "--force", "follower", "main")  # moved along, nothing its own
        upstream.push("main", "fresh", "follower", force=True)
        await sync(controller)
        assert reasons(controller, preview_of("feature"))[-1] == "Merged"
        assert controller.target.running(preview_of("feature")) == {}
        for branch in ("fresh", "follower"):
            assert "Merged" not in reasons(controller, preview_of(branch)), branch
            assert controller.target.running(preview_of(branch)), branch

    run(upstream, tmp_path, scenario)


# Emptying main -----------------------------------------------------------------------------


def empty_main(upstream: Upstream) -> str:
    upstream.git("checkout", "--quiet", "main")
    upstream.git("rm", "-r", "--quiet", "agents")
    sha = upstream.commit({}, message="Remove every agent")
    upstream.push("main")
    return sha


def test_a_commit_with_no_agents_stalls_production_instead_of_stopping_it(
    upstream: Upstream, tmp_path: Path
) -> None:
    seed(upstream, "alpha", "beta")

    async def scenario(controller: Controller, clock: Clock) -> None:
        await sync(controller)
        serving = controller.target.running(PRODUCTION)
        assert set(serving) == {"alpha", "beta"}
        sha = empty_main(upstream)
        await sync(controller)
        await sync(controller)
        status = controller.statuses[PRODUCTION]
        stalled = status.conditions["Stalled"]
        assert (stalled.status, stalled.reason) == (True, "EmptyProduction")
        assert f"commit {sha[:12]} declares no agents" in stalled.message
        assert "--allow-empty-production" in stalled.message
        assert not status.conditions["Ready"].status
        assert status.commit == sha
        assert controller.target.running(PRODUCTION) == serving
        assert reasons(controller, PRODUCTION).count("EmptyProduction") == 1
        assert "AgentRemoved" not in reasons(controller, PRODUCTION)

    run(upstream, tmp_path, scenario)


def test_allow_empty_production_lets_main_remove_every_agent(
    upstream: Upstream, tmp_path: Path
) -> None:
    seed(upstream, "alpha", "beta")

    async def scenario(controller: Controller, clock: Clock) -> None:
        await sync(controller)
        empty_main(upstream)
        await sync(controller)
        assert controller.target.running(PRODUCTION) == {}
        assert reasons(controller, PRODUCTION).count("AgentRemoved") == 2
        assert controller.statuses[PRODUCTION].conditions["Ready"].status

    run(upstream, tmp_path, scenario, allow_empty_production=True)


# History and undo --------------------------------------------------------------------------

OLD_HISTORY = 600


def fill_history(controller: Controller) -> None:
    """600 finished revisions and rollouts of alpha from before, through the store's API."""
    for index in range(OLD_HISTORY):
        version, commit = f"old{index:03d}", f"{index:040x}"
        controller.store.record_revision(
            agent="alpha", environment=PRODUCTION, version=version, commit=commit,
            branch="main", author="ann", message="old", manifest_json="{}",
        )  # fmt: skip
        rollout = controller.store.begin_rollout(
            agent="alpha", environment=PRODUCTION, from_version=None, to_version=version,
            commit=commit, author="ann",
        )  # fmt: skip
        controller.store.finish_rollout(rollout.id, RolloutResult.HEALTHY)


def test_undo_and_history_hold_past_five_hundred_revisions(
    upstream: Upstream, tmp_path: Path
) -> None:
    seed(upstream, "alpha")
    broken = manifest("alpha", temperature=0.9, command='["python3", "-c", "exit(3)"]', deadline=5)

    async def scenario(controller: Controller, clock: Clock) -> None:
        fill_history(controller)
        await sync(controller)
        first = desired(controller, "alpha")
        upstream.commit({"agents/alpha.yaml": manifest("alpha", temperature=0.3)}, "warmer")
        upstream.push("main")
        await sync(controller)
        second = desired(controller, "alpha")
        upstream.commit({"agents/alpha.yaml": broken}, "broken")
        upstream.push("main")
        await sync(controller)
        assert controller.target.running(PRODUCTION)["alpha"] == second

        history = controller.store.revisions("alpha", PRODUCTION)
        assert len(history) == 500
        assert [r.number for r in history[-3:]] == [601, 602, 603]
        rollouts = controller.store.rollouts("alpha", PRODUCTION)
        assert len(rollouts) == 500
        assert rollouts[-1].result is RolloutResult.ROLLED_BACK
        assert rollouts == sorted(rollouts, key=lambda r: r.id)

        # The revision before the one serving: not the newer version that failed.
        rollout = await controller.undo(PRODUCTION, "alpha", None, "ann", "too warm")
        assert (rollout.to_version, rollout.result) == (first, RolloutResult.HEALTHY)
        assert controller.store.rollouts("alpha", PRODUCTION)[-1] == rollout
        agent = controller.statuses[PRODUCTION].agents["alpha"]
        assert (agent.state, agent.version, agent.ready) == ("Pinned", first, True)
        steps = [r for r in reasons(controller, PRODUCTION) if r.startswith("Rollback")]
        assert steps == ["RollbackStarted", "RollbackSucceeded"]
        with pytest.raises(NotFound, match=r"revision 9999 of alpha .* \(revisions: 1 to 603\)"):
            await controller.undo(PRODUCTION, "alpha", 9999, "ann", "")

    run(upstream, tmp_path, scenario)


def test_serve_keeps_production_on_an_empty_main_until_started_with_the_opt_in(
    upstream: Upstream, tmp_path: Path
) -> None:
    seed(upstream, "alpha")
    shipyard = Shipyard(upstream.bare, tmp_path / "state").start()
    try:
        version = shipyard.version_of("alpha", PRODUCTION)
        assert version is not None
        shipyard.wait_version("alpha", PRODUCTION, version)
        sha = empty_main(upstream)
        wait_for(
            lambda: shipyard.environments()[PRODUCTION]["commit"] == sha,
            what="production to observe the empty commit",
        )
        status = subprocess.run(
            [str(Path(sys.executable).parent / "shipyard"), "rollout", "status", "alpha"],
            env={**os.environ, "SHIPYARD_SERVER": shipyard.api("")},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert status.returncode == 2, (status.stdout, status.stderr)
        assert f"production is Stalled at {sha[:12]}: commit {sha[:12]} declares no agents" in (
            status.stderr
        )
        assert shipyard.serving("alpha", PRODUCTION) is not None
    finally:
        shipyard.close()
    allowed = Shipyard(upstream.bare, tmp_path / "state", "--allow-empty-production").start()
    try:
        wait_for(lambda: not shipyard_agents(allowed), what="production's agents to be removed")
        assert allowed.serving("alpha", PRODUCTION) is None
    finally:
        allowed.close()


def shipyard_agents(shipyard: Shipyard) -> list[object]:
    return list(shipyard.environments()[PRODUCTION]["agents"])
