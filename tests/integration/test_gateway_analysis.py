"""Built-in canary analysis on Kubernetes: the controller judges from the gateways' series.

Everything is real and talks HTTP on loopback: the fake API server, its kubelet running
the agents' pods and two replicas of `shipyard gateway` (from `manifests/gateway.yaml`)
as processes, the controller with the Kubernetes target, and its gateway scraper. A
canary answering 500 behind the gateways is aborted by its `errorRate` analysis.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from pathlib import Path

import httpx

from controller.metrics.collector import Metrics
from controller.metrics.gateway_scrape import GatewayScraper
from controller.metrics.windows import RequestWindows
from controller.reconciler import canary_analysis
from controller.specs.model import Analysis
from controller.store.records import RolloutResult
from controller.targets.kubernetes import canaries
from controller.targets.kubernetes.client import KubeClient
from controller.targets.kubernetes.target import KubernetesTarget
from tests.fake_apiserver.kubelet import Kubelet
from tests.fake_apiserver.server import FakeApiServer
from tests.gitrepos import Upstream
from tests.integration import gateway_cluster, kube_controller
from tests.integration.gateway_cluster import (
    NAMESPACE,
    fake,
    kubeconfig,
    kubelet,
    ready_gateways,
    wait_for,
)

__all__ = ["fake", "kubeconfig", "kubelet"]  # fixtures from gateway_cluster

AGENT = "support-bot"
HOST = f"{AGENT}--production.agents.test"


ANALYSED_CANARY = """\
    strategy: Canary
    steps:
      - setWeight: 50
      - pause: {}
    analysis:
      interval: 1s
      minRequests: 10
      errorRate:
        max: 0.05
"""


def manifest(image: str, prompt: str) -> str:
    return gateway_cluster.agent_manifest(AGENT, prompt, ANALYSED_CANARY, image=image)


class Traffic:
    """Requests to the agent's host through both gateway replicas in turn, until stopped."""

    def __init__(self, gateways: list[str]) -> None:
        self.gateways = gateways
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Traffic:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stopped.set()
        self.thread.join(timeout=15)

    def _run(self) -> None:
        with httpx.Client(timeout=5) as client:
            for url in itertools.cycle(self.gateways):
                if self.stopped.is_set():
                    return
                try:
                    client.get(url + "/", headers={"host": HOST})
                except httpx.HTTPError:
                    self.stopped.wait(0.05)


def test_a_canary_answering_500_behind_the_gateways_is_aborted_by_error_rate(
    upstream: Upstream, tmp_path: Path, kubeconfig: Path, kubelet: Kubelet, fake: FakeApiServer
) -> None:
    client = KubeClient.from_config(str(kubeconfig))
    for obj in gateway_cluster.gateway_pods(kubeconfig, replicas=2):
        client.apply(obj)
    gateways = wait_for(lambda: ready_gateways(client), timeout=60, what="two gateway pods")

    upstream.commit({f"agents/{AGENT}.yaml": manifest(gateway_cluster.IMAGE, "You help.")},
                    branch="main")  # fmt: skip
    upstream.push("main")
    config = kube_controller.config(upstream, tmp_path)

    async def scenario() -> None:
        metrics = Metrics()
        target = KubernetesTarget(KubeClient.from_config(str(kubeconfig)), poll_interval=0.05)
        target.on_close(GatewayScraper(target.client, metrics.windows, period=0.2).start().stop)
        async with kube_controller.controller_on(
            config, target, gateway_cluster.CLUSTER_OPTIONS, metrics=metrics
        ) as controller:
            store = controller.store
            await kube_controller.sync(controller)
            stable = target.running("production")[AGENT]
            broken = manifest(gateway_cluster.BROKEN_IMAGE, "You help kindly.")
            upstream.commit({f"agents/{AGENT}.yaml": broken}, branch="main")
            upstream.push("main")
            with Traffic(gateways):
                await controller.sync_once()
                # The canary runs until its analysis ends it (it would hold forever, at
                # Inconclusive, if the gateways' requests never reached the analysis).
                await asyncio.wait_for(controller.wait_idle(), timeout=90)
            (*_, latest) = store.rollouts(AGENT, "production")
            assert latest.result is RolloutResult.ABORTED, latest
            assert "errorRate" in latest.reason, latest.reason
            assert target.running("production") == {AGENT: stable}
            name = canaries.canary_name(AGENT)
            assert fake.get_object("apps/v1", "deployments", name, NAMESPACE) is None
            with httpx.Client(timeout=10) as http:
                after = [http.get(gateways[i % 2] + "/", headers={"host": HOST}) for i in range(20)]
            assert {(r.status_code, r.headers["x-shipyard-version"]) for r in after} == {
                (200, stable)
            }

    asyncio.run(scenario())


def test_no_gateway_to_scrape_is_inconclusive_and_says_why(kubeconfig: Path) -> None:
    windows = RequestWindows()
    key = (AGENT, "production", "v2")
    windows.watch(key)
    scraper = GatewayScraper(KubeClient.from_config(str(kubeconfig)), windows)
    scraper.scrape_once()
    scraper.scrape_once()
    verdict = canary_analysis.judge(
        Analysis(interval_seconds=1, min_requests=10, max_error_rate=0.05), windows.take(key)
    )
    assert verdict.result is canary_analysis.Result.INCONCLUSIVE
    assert "no gateway answered" in verdict.message, verdict.message
    scraper.stop()
