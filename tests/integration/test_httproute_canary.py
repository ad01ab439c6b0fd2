"""Canary weights as Gateway API HTTPRoute backends, applied by the Kubernetes target.

The fake API server serves the HTTPRoute CRD; the real Kubernetes target (built as
`--http-route-gateway` builds it) starts a canary, sets its weight, and aborts or
promotes it, and the test reads what the API server holds.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

from controller.targets.kubernetes import canaries
from controller.targets.kubernetes.client import KubeClient
from controller.targets.kubernetes.gateway_rendering import GatewayRef
from controller.targets.kubernetes.target import KubernetesTarget
from tests.fake_apiserver.server import FakeApiServer
from tests.integration.gateway_cluster import NAMESPACE, request
from tests.integration.test_gateway import HTTP_ROUTE_CRD

AGENT = "support-bot"
ROUTES = "gateway.networking.k8s.io/v1"


def weights(server: FakeApiServer) -> dict[str, int]:
    route: Any = server.get_object(ROUTES, "httproutes", AGENT, NAMESPACE)
    assert route is not None, "no HTTPRoute"
    assert route["spec"]["hostnames"] == [f"{AGENT}--production.agents.test"]
    assert route["spec"]["parentRefs"] == [{"name": "public", "namespace": "gateways"}]
    return {ref["name"]: ref["weight"] for ref in route["spec"]["rules"][0]["backendRefs"]}


def test_a_canary_is_weighed_by_its_httproute_and_abort_and_promotion_settle_it(
    tmp_path: Path,
) -> None:
    canary = canaries.canary_name(AGENT)
    with FakeApiServer(ready_delay=0.05, crds=(HTTP_ROUTE_CRD,)) as server:
        client = KubeClient.from_config(str(server.kubeconfig(tmp_path / "kubeconfig")))
        target = KubernetesTarget(
            client, poll_interval=0.05, http_route_gateway=GatewayRef("public", "gateways")
        )
        assert target.routes is not None

        async def scenario() -> None:
            assert (await target.deploy(request(AGENT, "v1"), 30)).healthy
            started = await target.start_canary(request(AGENT, "v2"), 30)
            assert started.healthy, started.message
            assert weights(server) == {AGENT: 100, canary: 0}
            service: Any = server.get_object("v1", "services", canary, NAMESPACE)
            assert service["spec"]["selector"]["app.kubernetes.io/name"] == canary

            for weight in (10, 30):
                target.set_canary_weight("production", AGENT, weight)
            assert await asyncio.to_thread(target.routes.settled, 10)  # type: ignore[union-attr]
            assert weights(server) == {AGENT: 70, canary: 30}

            await target.abort_canary("production", AGENT)
            assert weights(server) == {AGENT: 100}
            assert server.get_object("v1", "services", canary, NAMESPACE) is None
            assert server.get_object("apps/v1", "deployments", canary, NAMESPACE) is None

            assert (await target.start_canary(request(AGENT, "v3"), 30)).healthy
            target.set_canary_weight("production", AGENT, 100)
            assert await target.promote_canary("production", AGENT)
            assert target.running("production") == {AGENT: "v3"}
            assert weights(server) == {AGENT: 100}
            assert server.get_object("v1", "services", canary, NAMESPACE) is None
            await target.close()

        asyncio.run(scenario())


def test_a_gateway_that_is_not_name_dot_namespace_is_refused_clearly(tmp_path: Path) -> None:
    shipyard = Path(sys.executable).with_name("shipyard")
    ran = subprocess.run(
        [str(shipyard), "serve", "--repo", str(tmp_path), "--target", "kubernetes",
         "--http-route-gateway", "public"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert ran.returncode == 2, ran
    assert "--http-route-gateway" in ran.stderr
    assert "is not SERVICE.NAMESPACE" in ran.stderr
    assert "Traceback" not in ran.stderr
