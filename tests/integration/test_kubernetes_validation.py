"""On the Kubernetes target, the controller refuses what the cluster would refuse, early.

An agent without `spec.image`, or with a request above its limit, Stalls its environment
with the same located message `shipyard validate --target kubernetes` prints, and the
last good versions keep running: nothing reaches the API server to be refused there.
"""

from __future__ import annotations

from pathlib import Path

from controller.reconciler.controller import Controller
from controller.specs import semantic
from controller.targets.kubernetes.target import KubernetesTarget
from preview import naming
from tests.fake_apiserver.server import FakeApiServer
from tests.gitrepos import Upstream
from tests.integration.kube_controller import sync
from tests.integration.test_kubernetes_health import (  # noqa: F401
    PRODUCTION_NS,
    fake,
    manifest,
    run,
)


def test_an_agent_without_an_image_stalls_production_with_the_validate_message(
    upstream: Upstream,
    tmp_path: Path,
    fake: FakeApiServer,  # noqa: F811
) -> None:
    upstream.commit({"agents/alpha.yaml": manifest("alpha")}, branch="main")
    upstream.push("main")

    async def scenario(controller: Controller, target: KubernetesTarget) -> None:
        await sync(controller)
        serving = target.running(naming.PRODUCTION)
        # Valid for the local target (spec.run), not for this one.
        no_image = manifest("alpha", 0.9).replace(
            "  image: ghcr.io/acme/alpha:1.0.0\n", "  run: {command: [python3, agent.py]}\n"
        )
        upstream.commit({"agents/alpha.yaml": no_image}, branch="main")
        upstream.push("main")
        fake.requests.clear()
        await sync(controller)
        status = controller.statuses[naming.PRODUCTION]
        stalled = status.conditions["Stalled"]
        assert (stalled.status, stalled.reason) == (True, "ManifestInvalid")
        assert f"agents/alpha.yaml:5:1: spec.image: {semantic.NO_IMAGE}" in stalled.message
        assert target.running(naming.PRODUCTION) == serving
        assert fake.requests.writes() == []

    run(upstream, tmp_path, fake, scenario)


def test_a_request_above_its_limit_never_reaches_the_cluster(
    upstream: Upstream,
    tmp_path: Path,
    fake: FakeApiServer,  # noqa: F811
) -> None:
    greedy = manifest("alpha") + "  resources:\n    requests: {cpu: '2'}\n    limits: {cpu: '1'}\n"
    upstream.commit({"agents/alpha.yaml": greedy}, branch="main")
    upstream.push("main")

    async def scenario(controller: Controller, target: KubernetesTarget) -> None:
        await sync(controller)
        stalled = controller.statuses[naming.PRODUCTION].conditions["Stalled"]
        assert stalled.status
        assert "spec.resources.requests.cpu: request 2 is above the limit 1" in stalled.message
        assert fake.get_object("apps/v1", "deployments", "alpha", PRODUCTION_NS) is None

    run(upstream, tmp_path, fake, scenario)
