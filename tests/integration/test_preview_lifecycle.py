"""Preview lifetimes driven in-process with a controllable clock: TTL, the cap, a lost remote.

The controller, git mirror, store and agent processes are the real ones; only time is
moved by hand, so a 72-hour TTL takes milliseconds.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path

from controller.reconciler.config import ControllerConfig
from controller.reconciler.controller import Controller
from controller.source.mirror import Mirror
from controller.store.sqlite import Store
from controller.targets.local.target import LocalTarget
from preview import naming
from tests.gitrepos import Upstream
from tests.integration.controller_harness import manifest, preview_of, seed

HOUR = 3600.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


Scenario = Callable[[Controller, Clock], Awaitable[None]]


def run(upstream: Upstream, tmp_path: Path, scenario: Scenario, **settings: object) -> None:
    config = ControllerConfig(
        repo=str(upstream.bare),
        state_dir=tmp_path / "state",
        poll_interval=3600,
        **settings,  # type: ignore[arg-type]
    )
    clock = Clock()

    async def main() -> None:
        store = Store(config.database)
        controller = Controller(
            config, Mirror(config.repo, config.mirror_dir), store, LocalTarget(), clock=clock
        )
        try:
            await scenario(controller, clock)
        finally:
            await controller.close()
            store.close()

    asyncio.run(main())


async def sync(controller: Controller) -> None:
    await controller.sync_once()
    await controller.wait_idle()


def push_branch(upstream: Upstream, branch: str, temperature: float = 0.5) -> str:
    sha = upstream.commit(
        {"agents/alpha.yaml": manifest("alpha", temperature=temperature)}, branch=branch
    )
    upstream.push(branch)
    return sha


def reasons(controller: Controller, environment: str) -> list[str]:
    return [event.reason for event in controller.store.events(environment=environment)]


def test_preview_expires_after_its_ttl_and_returns_on_the_next_push(
    upstream: Upstream, tmp_path: Path
) -> None:
    seed(upstream, "alpha")
    push_branch(upstream, "feature")
    environment = preview_of("feature")

    async def scenario(controller: Controller, clock: Clock) -> None:
        await sync(controller)
        assert controller.target.running(environment) != {}
        clock.now += 71 * HOUR
        await sync(controller)
        assert environment in controller.statuses
        clock.now += 2 * HOUR
        await sync(controller)
        assert environment not in controller.statuses
        assert controller.target.running(environment) == {}
        assert "Expired" in reasons(controller, environment)
        # An expired preview stays down until its branch moves again.
        await sync(controller)
        assert environment not in controller.statuses
        push_branch(upstream, "feature", temperature=0.6)
        await sync(controller)
        assert controller.target.running(environment) != {}

    run(upstream, tmp_path, scenario)


def test_manifest_ttl_shortens_a_preview(upstream: Upstream, tmp_path: Path) -> None:
    seed(upstream, "alpha")
    short = manifest("alpha", temperature=0.5) + "  preview:\n    ttl: 1h\n"
    upstream.commit({"agents/alpha.yaml": short}, branch="brief")
    upstream.push("brief")
    environment = preview_of("brief")

    async def scenario(controller: Controller, clock: Clock) -> None:
        await sync(controller)
        assert environment in controller.statuses
        clock.now += 1.5 * HOUR
        await sync(controller)
        assert environment not in controller.statuses

    run(upstream, tmp_path, scenario)


def test_cap_evicts_the_preview_idle_longest(upstream: Upstream, tmp_path: Path) -> None:
    seed(upstream, "alpha")

    async def scenario(controller: Controller, clock: Clock) -> None:
        for index, branch in enumerate(["one", "two"]):
            push_branch(upstream, branch, temperature=0.1 * (index + 1))
            await sync(controller)
            clock.now += 60
        push_branch(upstream, "three", temperature=0.9)
        await sync(controller)
        live = {name for name in controller.statuses if name != naming.PRODUCTION}
        assert live == {preview_of("two"), preview_of("three")}
        assert "Evicted" in reasons(controller, preview_of("one"))
        assert controller.target.running(preview_of("one")) == {}

    run(upstream, tmp_path, scenario, max_previews=2)


def test_unreachable_remote_keeps_serving_and_reports_it(
    upstream: Upstream, tmp_path: Path
) -> None:
    seed(upstream, "alpha")

    async def scenario(controller: Controller, clock: Clock) -> None:
        await sync(controller)
        serving = controller.target.running(naming.PRODUCTION)
        assert serving
        moved = upstream.bare.with_name("moved.git")
        shutil.move(upstream.bare, moved)
        try:
            await sync(controller)
            assert controller.source_error is not None
            assert "remote.git" in controller.source_error
            assert controller.target.running(naming.PRODUCTION) == serving
            assert naming.PRODUCTION in controller.statuses
        finally:
            shutil.move(moved, upstream.bare)
        await sync(controller)
        assert controller.source_error is None

    run(upstream, tmp_path, scenario)


def test_include_and_exclude_patterns_decide_which_branches_get_previews(
    upstream: Upstream, tmp_path: Path
) -> None:
    seed(upstream, "alpha")
    push_branch(upstream, "feature/a")
    push_branch(upstream, "feature/wip-b", temperature=0.7)
    push_branch(upstream, "chore/c", temperature=0.8)

    async def scenario(controller: Controller, clock: Clock) -> None:
        await sync(controller)
        assert set(controller.statuses) == {naming.PRODUCTION, preview_of("feature/a")}

    run(
        upstream,
        tmp_path,
        scenario,
        include=("feature/*",),
        exclude=("*/wip-*",),
    )


def test_an_unexpected_failure_is_reported_and_retried_not_fatal(
    upstream: Upstream, tmp_path: Path
) -> None:
    seed(upstream, "alpha")
    blocker = tmp_path / "state" / "checkouts"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("a file where the checkouts directory belongs")

    async def scenario(controller: Controller, clock: Clock) -> None:
        await sync(controller)
        production = controller.statuses[naming.PRODUCTION]
        ready = production.conditions["Ready"]
        assert not ready.status
        assert ready.reason == "InternalError", ready
        assert "FileExistsError" in ready.message
        assert controller.target.running(naming.PRODUCTION) == {}
        blocker.unlink()
        clock.now += 3600  # past any retry backoff
        await sync(controller)
        assert controller.target.running(naming.PRODUCTION) != {}
        assert controller.statuses[naming.PRODUCTION].conditions["Ready"].status

    run(upstream, tmp_path, scenario)
