"""The dashboard's traffic charts on Kubernetes: read from the gateways, which see the requests.

On a cluster agent requests pass `shipyard gateway` pods, not the controller, so charts
read from the controller's own registry stayed empty whatever the traffic. Here two real
gateway replicas (from `manifests/gateway.yaml`, run by the fake kubelet) serve an
agent's pods; the charts' history, fed by `gateway_readings` as `shipyard serve` feeds
it, counts every request sent through either replica.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from controller.api.ui import charts, rates
from controller.metrics.gateway_scrape import SCRAPE_TIMEOUT, gateway_readings
from controller.targets.kubernetes.client import KubeClient
from controller.targets.kubernetes.target import KubernetesTarget
from tests.fake_apiserver.kubelet import Kubelet
from tests.integration import gateway_cluster
from tests.integration.gateway_cluster import (
    fake,
    kubeconfig,
    kubelet,
    ready_gateways,
    request,
    wait_for,
)

__all__ = ["fake", "kubeconfig", "kubelet"]  # fixtures from gateway_cluster

AGENT = "support-bot"
HOST = f"{AGENT}--production.agents.test"


def test_requests_through_every_gateway_replica_reach_the_charts(
    kubeconfig: Path, kubelet: Kubelet
) -> None:
    client = KubeClient.from_config(str(kubeconfig))
    target = KubernetesTarget(KubeClient.from_config(str(kubeconfig)), poll_interval=0.05)
    with (
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
