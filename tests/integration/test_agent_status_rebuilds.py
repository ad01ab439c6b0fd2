"""A push that changes one agent rebuilds that agent's status line, not every agent's.

Real git, the real controller and Kubernetes target, the fake API server. Status lines
whose inputs did not change are kept as they were (the same objects); anything that
feeds a line (a new version, a pause) still shows at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.reconciler.controller import Controller
from controller.targets.kubernetes.target import KubernetesTarget
from preview import naming
from tests.fake_apiserver.server import FakeApiServer
from tests.gitrepos import Upstream
from tests.integration.kube_controller import sync
from tests.integration.test_kubernetes_health import manifest, run

NAMES = ("agent-a", "agent-b", "agent-c")


@pytest.fixture
def fake() -> Iterator[FakeApiServer]:
    server = FakeApiServer(ready_delay=0.05).start()
    try:
        yield server
    finally:
        server.stop()
        assert not server.crashes, server.crashes


def test_only_the_changed_agent_and_the_paused_one_get_new_status_lines(
    upstream: Upstream, tmp_path: Path, fake: FakeApiServer
) -> None:
    upstream.commit({f"agents/{name}.yaml": manifest(name) for name in NAMES})
    upstream.push("main")

    async def scenario(controller: Controller, target: KubernetesTarget) -> None:
        await sync(controller)
        before = dict(controller.statuses[naming.PRODUCTION].agents)
        assert {line.state for line in before.values()} == {"Healthy"}

        upstream.commit({"agents/agent-b.yaml": manifest("agent-b", 0.9)})
        upstream.push("main")
        await sync(controller)
        after = controller.statuses[naming.PRODUCTION].agents
        assert after["agent-a"] is before["agent-a"]
        assert after["agent-c"] is before["agent-c"]
        changed = after["agent-b"]
        assert changed.version == changed.desired_version != before["agent-b"].version
        assert changed.state == "Healthy"

        controller.pause(naming.PRODUCTION, "agent-c", "tester", "holding")
        paused = controller.statuses[naming.PRODUCTION].agents["agent-c"]
        assert paused.pinned_version == before["agent-c"].version
        assert paused.state == "Pinned"
        assert "holding" in paused.message
        assert controller.statuses[naming.PRODUCTION].agents["agent-a"] is before["agent-a"]

    run(upstream, tmp_path, fake, scenario)
