"""The dashboard's traffic charts on Kubernetes: read from the gateways, which see the requests.

On a cluster agent requests pass `shipyard gateway` pods, not the controller, so charts
read from the controller's own registry stayed empty whatever the traffic. Here two real
gateway replicas (from `manifests/gateway.yaml`, run by the fake kubelet) serve an
agent's pods; the charts' history, fed by `gateway_readings` as `shipyard serve` feeds
it, counts every request sent through either replica.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from controller.api.ui import charts, rates
from controller.metrics.gateway_scrape import GATEWAY_PODS, SCRAPE_TIMEOUT, gateway_readings
from controller.targets.kubernetes.client import KubeClient
from controller.targets.kubernetes.target import KubernetesTarget
from tests.fake_apiserver.server import FakeApiServer
from tests.integration import gateway_cluster
from tests.integration.gateway_cluster import request, wait_for

AGENT = "support-bot"
HOST = f"{AGENT}--production.agents.test"


@pytest.fixture
def fake() -> Iterator[FakeApiServer]:
    server = FakeApiServer(ready_delay=0.05).start()
    try:
        yield server
    finally:
        server.stop()


def ready_gateways(client: KubeClient) -> list[str] | None:
    urls = []
    for pod in client.list("v1", "Pod", None, GATEWAY_PODS):
        status = pod.get("status") or {}
        conditions = status.get("conditions") or []
        if any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
            urls.append(f"http://{status['podIP']}:8080")
    return sorted(urls) if len(urls) == 2 else None


def test_requests_through_every_gateway_replica_reach_the_charts(
    fake: FakeApiServer, tmp_path: Path
) -> None:
    kubeconfig = fake.kubeconfig(tmp_path / "kubeconfig")
    client = KubeClient.from_config(str(kubeconfig))
    target = KubernetesTarget(KubeClient.from_config(str(kubeconfig)), poll_interval=0.05)
    with (
        gateway_cluster.kubelet(fake, tmp_path / "pods"),
        httpx.Client(timeout=SCRAPE_TIMEOUT) as scrape,
        httpx.Client(timeout=10) as http,
    ):
        try:
            for obj in gateway_cluster.gateway_pods(kubeconfig, replicas=2):
                client.apply(obj)
            gateways = wait_for(lambda: ready_gateways(client), 60, "two gateway pods")
            deployed = asyncio.run(target.deploy(request(AGENT, "v1"), 30))
            assert deployed.healthy, deployed.message
            wait_for(
                lambda: all(
                    http.get(url + "/", headers={"host": HOST}).status_code == 200
                    for url in gateways
                ),
                what="v1 answering through both gateways",
            )
            history = rates.RateHistory(
                lambda: gateway_readings(client, scrape), source="the gateways' metrics"
            )
            history.sample()  # the baseline: requests before it count for nothing
            statuses = [
                http.get(gateways[i % 2] + f"/{i}", headers={"host": HOST}).status_code
                for i in range(30)
            ]
            assert statuses == [200] * 30
            history.sample()

            traffic = history.of(AGENT, "production")
            (point,) = traffic.series["v1"]
            assert point.requests == 30  # 15 through each replica, summed
            assert point.errors == 0
            shown = charts.section(traffic)
            assert "From the gateways&#x27; metrics" in shown
            assert "No agent requests" not in shown
        finally:
            asyncio.run(target.close())
