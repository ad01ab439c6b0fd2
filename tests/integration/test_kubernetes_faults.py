"""API errors are hiccups, not verdicts: the Kubernetes target against an injected-fault fake.

A 409 or a 5xx on the Deployment's apply says nothing about the version being deployed.
These tests inject them through the fake API server's fault queue and check that the
rollout is retried (by the client, then by the environment's backoff) until it succeeds,
under one rollout record, with no rollback and no version marked failed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from controller.reconciler.controller import Controller
from controller.store.records import RolloutResult
from controller.targets.kubernetes.target import KubernetesTarget
from preview import naming
from tests.fake_apiserver.server import FakeApiServer
from tests.gitrepos import Upstream
from tests.integration import kube_controller
from tests.integration.kube_controller import Scenario
from tests.integration.test_kubernetes_target import (
    OPTIONS,
    PRODUCTION_NS,
    fake,
    kubeconfig,
    manifest,
    seed,
    version_of,
)

__all__ = ["fake", "kubeconfig"]  # fixtures shared with test_kubernetes_target

DEPLOYMENT_APPLY = "/namespaces/shipyard-production/deployments/alpha$"


def run(upstream: Upstream, tmp_path: Path, kubeconfig: Path, scenario: Scenario) -> None:
    """The real controller with fast backoff: the client's and the environment's."""
    config = kube_controller.config(upstream, tmp_path, backoff_base=0.05, backoff_cap=0.2)
    kube_controller.run(config, OPTIONS, kubeconfig, scenario, client_backoff_base=0.01)


async def sync_until(controller: Controller, done: Callable[[], bool], attempts: int = 50) -> None:
    """Sync as the loop would (retries come due after their backoff) until `done`."""
    for _ in range(attempts):
        await controller.sync_once()
        await controller.wait_idle()
        if done():
            return
        await asyncio.sleep(0.25)
    raise AssertionError("the environment did not converge")


async def first_version(controller: Controller, fake: FakeApiServer) -> str | None:
    """Sync until alpha's first version is on the cluster; that version."""
    await sync_until(controller, lambda: version_of(fake, PRODUCTION_NS, "alpha") is not None)
    return version_of(fake, PRODUCTION_NS, "alpha")


def assert_one_healthy_rollout(controller: Controller, version: str) -> None:
    records = [
        r for r in controller.store.rollouts("alpha", naming.PRODUCTION) if r.to_version == version
    ]
    assert [r.result for r in records] == [RolloutResult.HEALTHY], records
    reasons = [e.reason for e in controller.store.events(naming.PRODUCTION, "alpha")]
    assert "RolloutFailed" not in reasons
    agent = controller.statuses[naming.PRODUCTION].agents["alpha"]
    assert agent.state == "Healthy"
    assert agent.ready


def new_version(upstream: Upstream, temperature: float) -> None:
    upstream.commit({"agents/alpha.yaml": manifest("alpha", temperature)}, branch="main")
    upstream.push("main")


def test_conflicts_on_the_deployment_apply_are_retried_not_rolled_back(
    upstream: Upstream, tmp_path: Path, kubeconfig: Path, fake: FakeApiServer
) -> None:
    seed(upstream, "alpha")

    async def scenario(controller: Controller, target: KubernetesTarget) -> None:
        old = await first_version(controller, fake)
        new_version(upstream, 0.9)
        fake.faults.fail(3, 409, method="PATCH", path=DEPLOYMENT_APPLY)
        await sync_until(controller, lambda: version_of(fake, PRODUCTION_NS, "alpha") != old)
        version = version_of(fake, PRODUCTION_NS, "alpha")
        assert version is not None
        await sync_until(
            controller, lambda: controller.statuses[naming.PRODUCTION].agents["alpha"].ready
        )
        assert fake.faults.pending() == 0
        assert_one_healthy_rollout(controller, version)

    run(upstream, tmp_path, kubeconfig, scenario)


def test_server_errors_beyond_the_clients_retries_are_retried_with_backoff(
    upstream: Upstream, tmp_path: Path, kubeconfig: Path, fake: FakeApiServer
) -> None:
    seed(upstream, "alpha")

    async def scenario(controller: Controller, target: KubernetesTarget) -> None:
        old = await first_version(controller, fake)
        new_version(upstream, 0.9)
        # More than the client's own retries (1 + 5 attempts), then a further round.
        fake.faults.fail(target.client.retries + 4, 500, method="PATCH", path=DEPLOYMENT_APPLY)
        fake.faults.fail(target.client.retries + 4, 409, method="PATCH", path=DEPLOYMENT_APPLY)
        await sync_until(
            controller,
            lambda: (
                version_of(fake, PRODUCTION_NS, "alpha") != old
                and controller.statuses[naming.PRODUCTION].agents["alpha"].ready
            ),
        )
        assert fake.faults.pending() == 0
        version = version_of(fake, PRODUCTION_NS, "alpha")
        assert version is not None
        assert_one_healthy_rollout(controller, version)
        reasons = [e.reason for e in controller.store.events(naming.PRODUCTION, "alpha")]
        assert "RolloutRetrying" in reasons

    run(upstream, tmp_path, kubeconfig, scenario)


def test_a_real_health_verdict_still_rolls_back(
    upstream: Upstream, tmp_path: Path, kubeconfig: Path, fake: FakeApiServer
) -> None:
    seed(upstream, "alpha")

    async def scenario(controller: Controller, target: KubernetesTarget) -> None:
        good = await first_version(controller, fake)
        fake.deployments.set_mode("stuck", f"{PRODUCTION_NS}/alpha", deadline=0.3)
        fake.faults.fail(2, 409, method="PATCH", path=DEPLOYMENT_APPLY)
        new_version(upstream, 1.9)
        await sync_until(
            controller,
            lambda: controller.statuses[naming.PRODUCTION].agents["alpha"].state == "Failed",
        )
        assert version_of(fake, PRODUCTION_NS, "alpha") == good
        last = controller.store.rollouts("alpha", naming.PRODUCTION)[-1]
        assert last.result is RolloutResult.ROLLED_BACK
        assert "ProgressDeadlineExceeded" in last.reason

    run(upstream, tmp_path, kubeconfig, scenario)
