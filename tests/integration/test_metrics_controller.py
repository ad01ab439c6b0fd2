"""The reconcile loop reports to its metrics: rollouts, commit-to-live, phases, fetch errors.

In-process with the real controller, git mirror, store and agent processes; time is a
hand-moved clock, as in `test_preview_lifecycle`.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path

from controller.metrics.collector import Metrics
from controller.reconciler.config import ControllerConfig
from controller.reconciler.controller import Controller
from controller.source.mirror import Mirror
from controller.store.sqlite import Store
from controller.targets.local.target import LocalTarget
from preview import naming
from tests.gitrepos import Upstream
from tests.integration.controller_harness import manifest, preview_of, seed

NOW = 1_000_000.0
Scenario = Callable[[Controller], Awaitable[None]]


def run(upstream: Upstream, tmp_path: Path, scenario: Scenario) -> None:
    config = ControllerConfig(
        repo=str(upstream.bare), state_dir=tmp_path / "state", poll_interval=3600
    )

    async def main() -> None:
        store = Store(config.database)
        mirror = Mirror(config.repo, config.mirror_dir)
        controller = Controller(config, mirror, store, LocalTarget(), clock=lambda: NOW)
        try:
            await scenario(controller)
        finally:
            await controller.close()
            store.close()

    asyncio.run(main())


async def sync(controller: Controller) -> None:
    await controller.sync_once()
    await controller.wait_idle()


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def environments_in(metrics: Metrics) -> set[str]:
    return {
        sample.labels["environment"]
        for family in metrics.registry.collect()
        for sample in family.samples
        if "environment" in sample.labels
    }


def test_a_sync_reports_phases_rollouts_and_commit_to_live(
    upstream: Upstream, tmp_path: Path
) -> None:
    seed(upstream, "alpha")

    async def scenario(controller: Controller) -> None:
        await sync(controller)
        metrics = controller.metrics
        for phase in ("fetch", "load", "plan", "apply"):
            count = value(metrics, "shipyard_sync_phase_duration_seconds_count", phase=phase)
            assert (count or 0) >= 1, phase
        healthy = {"agent": "alpha", "environment": naming.PRODUCTION, "result": "Healthy"}
        assert value(metrics, "shipyard_rollouts_total", **healthy) == 1
        assert value(metrics, "shipyard_rollout_duration_seconds_count", result="Healthy") == 1
        live = {"environment_kind": "production"}
        assert value(metrics, "shipyard_commit_to_live_seconds_count", **live) == 1
        # The clock did not move between seeing the push and the version turning healthy.
        assert value(metrics, "shipyard_commit_to_live_seconds_sum", **live) == 0
        synced = {"environment": naming.PRODUCTION}
        assert value(metrics, "shipyard_last_successful_sync_timestamp_seconds", **synced) == NOW
        assert value(metrics, "shipyard_manifest_errors", **synced) == 0

    run(upstream, tmp_path, scenario)


def test_a_preview_is_counted_while_it_lives_and_forgotten_when_its_branch_goes(
    upstream: Upstream, tmp_path: Path
) -> None:
    seed(upstream, "alpha")
    upstream.commit({"agents/alpha.yaml": manifest("alpha", temperature=0.7)}, branch="feature")
    upstream.push("feature")
    environment = preview_of("feature")

    async def scenario(controller: Controller) -> None:
        await sync(controller)
        metrics = controller.metrics
        assert value(metrics, "shipyard_previews", state="Ready") == 1
        kind = {"environment_kind": "preview"}
        assert value(metrics, "shipyard_commit_to_live_seconds_count", **kind) == 1
        assert environment in environments_in(metrics)
        upstream.push(":feature")
        await sync(controller)
        assert value(metrics, "shipyard_previews", state="Ready") == 0
        assert environments_in(metrics) == {naming.PRODUCTION}

    run(upstream, tmp_path, scenario)


def test_invalid_manifests_and_a_lost_remote_are_counted(
    upstream: Upstream, tmp_path: Path
) -> None:
    seed(upstream, "alpha")
    bad = manifest("alpha", temperature=3.5) + "  unknownField: 1\n"
    upstream.commit({"agents/alpha.yaml": bad}, branch="broken")
    upstream.push("broken")
    environment = preview_of("broken")

    async def scenario(controller: Controller) -> None:
        await sync(controller)
        metrics = controller.metrics
        errors = value(metrics, "shipyard_manifest_errors", environment=environment)
        assert (errors or 0) >= 2
        assert value(metrics, "shipyard_previews", state="Stalled") == 1
        synced = {"environment": environment}
        assert value(metrics, "shipyard_last_successful_sync_timestamp_seconds", **synced) is None
        assert value(metrics, "shipyard_git_fetch_errors_total") == 0
        moved = upstream.bare.with_name("moved.git")
        shutil.move(upstream.bare, moved)
        try:
            await sync(controller)
        finally:
            shutil.move(moved, upstream.bare)
        assert value(metrics, "shipyard_git_fetch_errors_total") == 1

    run(upstream, tmp_path, scenario)
