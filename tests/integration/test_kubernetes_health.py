"""Rollout health on the Kubernetes target is read from a watch that cannot race our writes.

Real git, the real controller and target, the fake API server through the official
client. A Deployment the waiters have not seen yet is never "gone"; one someone deletes
mid-rollout is applied again and the rollout still ends healthy.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from controller.reconciler import kube_workloads
from controller.reconciler.controller import Controller
from controller.store.records import RolloutResult
from controller.targets.kubernetes.target import KubernetesTarget
from preview import naming
from tests.fake_apiserver.server import FakeApiServer
from tests.gitrepos import Upstream
from tests.integration import kube_controller
from tests.integration.controller_harness import preview_of
from tests.integration.kube_controller import Scenario, sync

PRODUCTION_NS = "shipyard-production"


def manifest(name: str, temperature: float = 0.2, *, preview: bool = True) -> str:
    return f"""\
apiVersion: shipyard.dev/v1alpha1
kind: Agent
metadata:
  name: {name}
spec:
  image: ghcr.io/acme/{name}:1.0.0
  model: {{provider: fake, name: echo, parameters: {{temperature: {temperature}}}}}
  prompt: {{system: You are {name}.}}
  preview: {{enabled: {str(preview).lower()}}}
  rollout: {{progressDeadlineSeconds: 20}}
"""


@pytest.fixture
def fake() -> Any:
    server = FakeApiServer(ready_delay=0.05).start()
    try:
        yield server
    finally:
        server.stop()
        assert not server.crashes, server.crashes


def run(
    upstream: Upstream,
    tmp_path: Path,
    fake: FakeApiServer,
    scenario: Scenario,
    *,
    poll_interval: float = 0.05,
) -> None:
    kube_controller.run(
        kube_controller.config(upstream, tmp_path),
        kube_workloads.ClusterOptions(production_namespace=PRODUCTION_NS),
        fake.kubeconfig(tmp_path / "kubeconfig"),
        scenario,
        poll_interval=poll_interval,
    )


def failures(controller: Controller, environment: str) -> list[str]:
    return [
        f"{event.agent}: {event.message}"
        for event in controller.store.events(environment)
        if event.reason == "RolloutFailed"
    ]


def test_a_deployment_applied_after_another_waiter_looked_is_not_reported_gone(
    upstream: Upstream, tmp_path: Path, fake: FakeApiServer
) -> None:
    """beta's apply lands after alpha's waiter has read the namespace: the shared list of
    old read that as "Deployment disappeared" and failed a healthy rollout."""
    names = ("alpha", "beta")
    upstream.commit({f"agents/{n}.yaml": manifest(n) for n in names}, branch="main")
    upstream.push("main")
    fake.faults.delay(0.6, method="PATCH", path="/deployments/beta$")

    async def scenario(controller: Controller, target: KubernetesTarget) -> None:
        await sync(controller)
        assert failures(controller, naming.PRODUCTION) == []
        assert target.running(naming.PRODUCTION) == {
            name: controller.statuses[naming.PRODUCTION].agents[name].desired_version
            for name in names
        }
        assert controller.statuses[naming.PRODUCTION].conditions["Ready"].status

    run(upstream, tmp_path, fake, scenario, poll_interval=1.5)


def test_many_agents_and_a_preview_on_first_sync_all_turn_healthy(
    upstream: Upstream, tmp_path: Path, fake: FakeApiServer
) -> None:
    names = [f"agent-{index:02d}" for index in range(24)]
    upstream.commit({f"agents/{n}.yaml": manifest(n, preview=n < "agent-03") for n in names})
    upstream.push("main")
    upstream.commit(
        {f"agents/{n}.yaml": manifest(n, 0.9, preview=True) for n in names[:3]},
        branch="feature/three",
    )
    upstream.push("feature/three")
    environment = preview_of("feature/three")

    async def scenario(controller: Controller, target: KubernetesTarget) -> None:
        await sync(controller)
        assert failures(controller, naming.PRODUCTION) == []
        assert failures(controller, environment) == []
        assert set(target.running(naming.PRODUCTION)) == set(names)
        assert set(target.running(environment)) == set(names[:3])

    run(upstream, tmp_path, fake, scenario, poll_interval=0.5)


def test_a_deployment_deleted_mid_rollout_is_applied_again_not_failed(
    upstream: Upstream, tmp_path: Path, fake: FakeApiServer
) -> None:
    upstream.commit({"agents/alpha.yaml": manifest("alpha")}, branch="main")
    upstream.push("main")
    fake.deployments.set_mode("slow", f"{PRODUCTION_NS}/alpha", delay=3.0)

    async def scenario(controller: Controller, target: KubernetesTarget) -> None:
        syncing = asyncio.create_task(sync(controller))
        first = await _appears(fake, "alpha")
        fake.deployments.set_mode("ready", f"{PRODUCTION_NS}/alpha", delay=0.05)
        assert target.client.delete("apps/v1", "Deployment", "alpha", PRODUCTION_NS)
        await syncing
        again = fake.get_object("apps/v1", "deployments", "alpha", PRODUCTION_NS)
        assert again is not None
        assert again["metadata"]["uid"] != first["metadata"]["uid"]
        (rollout,) = controller.store.rollouts("alpha", naming.PRODUCTION)
        assert rollout.result is RolloutResult.HEALTHY, rollout.reason
        assert ("production", "alpha", "Deployment deleted during its rollout") in target.drift

    run(upstream, tmp_path, fake, scenario)


def test_dropped_watches_do_not_stall_or_fail_rollouts(
    upstream: Upstream, tmp_path: Path, fake: FakeApiServer
) -> None:
    upstream.commit({"agents/alpha.yaml": manifest("alpha")}, branch="main")
    upstream.push("main")
    fake.deployments.set_mode("slow", f"{PRODUCTION_NS}/alpha", delay=1.0)

    async def scenario(controller: Controller, target: KubernetesTarget) -> None:
        syncing = asyncio.create_task(sync(controller))
        await _appears(fake, "alpha")
        fake.drop_watches("abrupt")
        await syncing
        (rollout,) = controller.store.rollouts("alpha", naming.PRODUCTION)
        assert rollout.result is RolloutResult.HEALTHY, rollout.reason

        def lists() -> int:
            # The fake records a request once answered: a re-opened watch stays open, so
            # the informer's re-list (which precedes it) is what shows the recovery.
            return sum(
                1
                for r in fake.requests.all()
                if r.method == "GET" and not r.is_watch and r.path.endswith("/deployments")
            )

        for _ in range(300):
            if lists() >= 2:
                break
            await asyncio.sleep(0.05)
        assert lists() >= 2, "the informer did not list again after the drop"

    run(upstream, tmp_path, fake, scenario)


async def _appears(fake: FakeApiServer, name: str) -> dict[str, Any]:
    for _ in range(600):
        found = fake.get_object("apps/v1", "deployments", name, PRODUCTION_NS)
        if found is not None:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"Deployment {name} never appeared")
