"""`shipyard gateway` routing real HTTP to pods the fake kubelet runs as processes.

The fake API server, its test-only kubelet and the gateway are real processes or
threads talking HTTP on loopback; agent versions are deployed by the real Kubernetes
target (stable Deployment, canary Deployment, weights published as annotations).
"""

from __future__ import annotations

import asyncio
import collections
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import kubernetes
import pytest

from controller.reconciler import steering
from controller.targets.kubernetes import canaries, gateway_rendering, rendering
from controller.targets.kubernetes.client import KubeClient
from controller.targets.kubernetes.target import KubernetesTarget
from tests.fake_apiserver.kubelet import Kubelet
from tests.fake_apiserver.server import FakeApiServer
from tests.gitrepos import Upstream
from tests.integration import gateway_cluster, kube_controller
from tests.integration.gateway_cluster import (
    NAMESPACE,
    Gateway,
    fake,
    gateway,
    kubeconfig,
    kubelet,
    request,
    wait_for,
)

__all__ = ["fake", "gateway", "kubeconfig", "kubelet"]  # fixtures from gateway_cluster

AGENT = "support-bot"


@pytest.fixture
def target(kubeconfig: Path) -> Iterator[KubernetesTarget]:
    cluster = KubernetesTarget(KubeClient.from_config(str(kubeconfig)), poll_interval=0.05)
    yield cluster
    asyncio.run(cluster.close())


def answers(gateway: Gateway, count: int) -> list[httpx.Response]:
    with httpx.Client(timeout=10) as client:
        return [gateway.get(AGENT, "/", client) for _ in range(count)]


def ok(response: httpx.Response) -> httpx.Response | None:
    return response if response.status_code == 200 else None


def both_pods(replies: list[httpx.Response]) -> list[str] | None:
    pods = sorted({r.json()["pod"] for r in replies})
    return pods if len(pods) == 2 else None


def test_canary_takes_its_weight_and_each_version_is_counted(
    target: KubernetesTarget, gateway: Gateway
) -> None:
    deployed = asyncio.run(target.deploy(request(AGENT, "v1", replicas=2), 30))
    assert deployed.healthy, deployed.message
    first = wait_for(lambda: ok(gateway.get(AGENT)), what="v1 answering")
    assert first.headers["x-shipyard-version"] == "v1"
    assert first.json()["version"] == "v1"

    started = asyncio.run(target.start_canary(request(AGENT, "v2"), 30))
    assert started.healthy, started.message
    # At weight 0 the canary runs but answers nothing.
    assert {r.headers["x-shipyard-version"] for r in answers(gateway, 50)} == {"v1"}

    target.set_canary_weight("production", AGENT, 30)
    assert target.weights.settled(10)
    wait_for(lambda: any(r.headers["x-shipyard-version"] == "v2" for r in answers(gateway, 20)),
             what="the canary's first answer")  # fmt: skip
    replies = answers(gateway, 400)
    assert all(r.status_code == 200 for r in replies)
    versions = collections.Counter(r.headers["x-shipyard-version"] for r in replies)
    assert versions["v1"] + versions["v2"] == 400
    assert 80 <= versions["v2"] <= 160, versions  # 30 % of 400 is 120; 4 standard deviations
    # Both stable pods share the stable traffic (load-balanced, not pinned to one pod).
    stable_pods = {r.json()["pod"] for r in replies if r.json()["version"] == "v1"}
    assert len(stable_pods) == 2, stable_pods
    # The body agrees with the stamp: the version named is the version that answered.
    assert all(r.json()["version"] == r.headers["x-shipyard-version"] for r in replies)

    metrics = httpx.get(gateway.url + "/metrics", timeout=10).text
    counted = {
        version: float(value)
        for version, value in re.findall(
            r'shipyard_agent_requests_total\{agent="support-bot",code="200",'
            r'environment="production",version="(v\d)"\} ([0-9.e+]+)',
            metrics,
        )
    }
    assert counted["v2"] >= versions["v2"]
    assert counted["v1"] >= versions["v1"] + 50
    assert 'shipyard_agent_request_duration_seconds_count{agent="support-bot",' in metrics
    assert "shipyard_agent_version_info" not in metrics  # the controller's to export


def test_abort_sends_everything_back_to_stable_and_promotion_moves_it(
    target: KubernetesTarget, gateway: Gateway, fake: FakeApiServer
) -> None:
    assert asyncio.run(target.deploy(request(AGENT, "v1"), 30)).healthy
    assert asyncio.run(target.start_canary(request(AGENT, "v2"), 30)).healthy
    target.set_canary_weight("production", AGENT, 100)
    wait_for(lambda: all(r.headers["x-shipyard-version"] == "v2" for r in answers(gateway, 10)),
             what="all traffic on the canary")  # fmt: skip
    assert [c.weight for c in target.canaries()] == [100]

    asyncio.run(target.abort_canary("production", AGENT))
    assert fake.get_object("apps/v1", "deployments", canaries.canary_name(AGENT), NAMESPACE) is None
    wait_for(lambda: all(r.headers["x-shipyard-version"] == "v1" for r in answers(gateway, 10)),
             what="all traffic back on stable")  # fmt: skip
    assert target.canaries() == []

    assert asyncio.run(target.start_canary(request(AGENT, "v3"), 30)).healthy
    target.set_canary_weight("production", AGENT, 100)
    assert asyncio.run(target.promote_canary("production", AGENT))
    # The stable Deployment now runs v3 and the canary is gone; nothing answers v1 again.
    assert fake.get_object("apps/v1", "deployments", canaries.canary_name(AGENT), NAMESPACE) is None
    assert target.running("production") == {AGENT: "v3"}
    wait_for(lambda: all(r.headers["x-shipyard-version"] == "v3" for r in answers(gateway, 20)),
             what="v3 answering as stable")  # fmt: skip
    assert all(r.status_code == 200 for r in answers(gateway, 20))


def test_a_pod_that_goes_away_drops_out_of_rotation(
    target: KubernetesTarget, gateway: Gateway, kubelet: Kubelet, fake: FakeApiServer
) -> None:
    assert asyncio.run(target.deploy(request(AGENT, "v1", replicas=2), 30)).healthy
    pods = wait_for(lambda: both_pods(answers(gateway, 30)), what="both pods answering")
    gone = pods[0]
    # As an operator would (`kubectl delete pod`): Shipyard itself never deletes pods.
    api = kubernetes.client.ApiClient(kubernetes.client.Configuration(host=fake.url))
    kubernetes.client.CoreV1Api(api).delete_namespaced_pod(gone, NAMESPACE)
    wait_for(lambda: (NAMESPACE, gone) not in kubelet.running(), what="the pod's process to stop")

    def settled() -> list[httpx.Response] | None:
        replies = answers(gateway, 50)
        ok = all(r.status_code == 200 and r.json()["pod"] != gone for r in replies)
        return replies if ok else None

    wait_for(settled, what="the gateway to stop sending to the deleted pod")
    # The process is dead: a request routed to it would fail with 502, not skip it.
    replies = answers(gateway, 200)
    assert [r.status_code for r in replies] == [200] * 200
    assert gone not in {r.json()["pod"] for r in replies}


CANARY_AT_30 = """\
    strategy: Canary
    steps:
      - setWeight: 30
      - pause: {}
"""


def canary_manifest(prompt: str) -> str:
    return gateway_cluster.agent_manifest(AGENT, prompt, CANARY_AT_30)


def test_the_controller_runs_a_canary_manifest_through_the_gateway(
    upstream: Upstream, tmp_path: Path, kubeconfig: Path, gateway: Gateway, fake: FakeApiServer
) -> None:
    upstream.commit({f"agents/{AGENT}.yaml": canary_manifest("You help.")}, branch="main")
    upstream.push("main")
    config = kube_controller.config(upstream, tmp_path)

    async def scenario() -> None:
        target = KubernetesTarget(KubeClient.from_config(str(kubeconfig)), poll_interval=0.05)
        async with kube_controller.controller_on(
            config, target, gateway_cluster.CLUSTER_OPTIONS
        ) as controller:
            await kube_controller.sync(controller)
            stable = target.running("production")[AGENT]
            upstream.commit(
                {f"agents/{AGENT}.yaml": canary_manifest("You help kindly.")}, branch="main"
            )
            upstream.push("main")
            await controller.sync_once()  # the rollout runs on in the controller's work queue
            give_up = asyncio.get_running_loop().time() + 60
            while not (target.canaries() and target.canaries()[0].weight == 30):
                assert asyncio.get_running_loop().time() < give_up, "no canary at 30 %"
                await asyncio.sleep(0.05)
            canary = target.canaries()[0].serving.version
            assert canary != stable
            replies = await asyncio.to_thread(measured_split, gateway, canary)
            assert 80 <= replies[canary] <= 160, replies
            assert replies[stable] + replies[canary] == 400
            progress = controller.canaries.as_dict("production", AGENT)
            assert progress is not None
            assert (progress["step"], progress["weight"], progress["phase"]) == (2, 30, "Paused")

            steering.steer_canary(
                controller.store,
                controller.canaries,
                "production",
                AGENT,
                intent="promote",
                actor="test",
            )
            await controller.wait_idle()
            assert target.running("production") == {AGENT: canary}
            assert target.canaries() == []
            name = canaries.canary_name(AGENT)
            assert fake.get_object("apps/v1", "deployments", name, NAMESPACE) is None
            after = await asyncio.to_thread(answers, gateway, 20)
            assert {r.headers["x-shipyard-version"] for r in after} == {canary}

    asyncio.run(scenario())


def measured_split(gateway: Gateway, canary: str) -> collections.Counter[str]:
    """400 answers counted by version, once the canary has answered (its weight is in)."""
    wait_for(lambda: any(r.headers["x-shipyard-version"] == canary for r in answers(gateway, 20)),
             what="the canary's first answer")  # fmt: skip
    return collections.Counter(r.headers["x-shipyard-version"] for r in answers(gateway, 400))


HTTP_ROUTE_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "httproutes.gateway.networking.k8s.io"},
    "spec": {
        "group": "gateway.networking.k8s.io",
        "scope": "Namespaced",
        "names": {"plural": "httproutes", "singular": "httproute", "kind": "HTTPRoute",
                  "listKind": "HTTPRouteList"},
        "versions": [{
            "name": "v1", "served": True, "storage": True,
            "schema": {"openAPIV3Schema": {"type": "object",
                                           "x-kubernetes-preserve-unknown-fields": True}},
        }],
    },
}  # fmt: skip


def test_httproute_weights_apply_to_a_cluster_with_gateway_api(tmp_path: Path) -> None:
    """Where a cluster has Gateway API: the rendered HTTPRoute applies, and re-applying it
    with a new weight changes only the backends' weights."""
    with FakeApiServer(crds=(HTTP_ROUTE_CRD,)) as server:
        api = kubernetes.client.ApiClient(kubernetes.client.Configuration(host=server.url))
        routes = kubernetes.client.CustomObjectsApi(api)
        stable = request(AGENT, "v1")
        (workload_service,) = [o for o in stable.objects if o["kind"] == "Service"]
        parent = gateway_rendering.GatewayRef("public", "gateways")
        workload = rendering.Workload(
            name=AGENT, environment="production", version="v1", commit="0" * 40,
            image=gateway_cluster.IMAGE, model_provider="fake", model_name="echo", prompt="p",
            host=f"{AGENT}--production.agents.test",
        )  # fmt: skip
        settings = rendering.EnvironmentSettings("production", NAMESPACE, is_preview=False)
        core = kubernetes.client.CoreV1Api(api)
        # Plain dicts go out as they are (the typed models only describe them).
        core.create_namespace(cast(Any, {"metadata": {"name": NAMESPACE}}))
        canary_service = gateway_rendering.canary_service(
            workload_service, canaries.canary_name(AGENT)
        )
        core.create_namespaced_service(NAMESPACE, cast(Any, canary_service))
        for weight in (10, 30):
            route = gateway_rendering.http_route(
                workload, settings, parent=parent, canary=(canaries.canary_name(AGENT), weight)
            )
            routes.patch_namespaced_custom_object(
                "gateway.networking.k8s.io", "v1", NAMESPACE, "httproutes", AGENT, route,
                field_manager="shipyard", force=True,
                _content_type="application/apply-patch+yaml",
            )  # fmt: skip
            stored = server.get_object(
                "gateway.networking.k8s.io/v1", "httproutes", AGENT, NAMESPACE
            )
            assert stored is not None
            weights = {
                ref["name"]: ref["weight"] for ref in stored["spec"]["rules"][0]["backendRefs"]
            }
            assert weights == {AGENT: 100 - weight, canaries.canary_name(AGENT): weight}
            assert stored["spec"]["hostnames"] == [f"{AGENT}--production.agents.test"]


def test_a_canary_left_by_a_restart_goes_with_the_next_plain_rollout(
    target: KubernetesTarget, kubeconfig: Path, kubelet: Kubelet, fake: FakeApiServer
) -> None:
    assert asyncio.run(target.deploy(request(AGENT, "v1"), 30)).healthy
    assert asyncio.run(target.start_canary(request(AGENT, "v2"), 30)).healthy
    name = canaries.canary_name(AGENT)
    assert fake.get_object("apps/v1", "deployments", name, NAMESPACE) is not None
    # A controller started afresh knows no canary; its next rollout of the agent must not
    # leave the orphan taking its weight at the gateway.
    restarted = KubernetesTarget(KubeClient.from_config(str(kubeconfig)), poll_interval=0.05)
    try:
        assert asyncio.run(restarted.deploy(request(AGENT, "v3"), 30)).healthy
        assert fake.get_object("apps/v1", "deployments", name, NAMESPACE) is None
        assert restarted.running("production") == {AGENT: "v3"}
    finally:
        asyncio.run(restarted.close())


def test_a_canary_that_crashes_never_starts_and_leaves_nothing_behind(
    kubeconfig: Path, kubelet: Kubelet, fake: FakeApiServer
) -> None:
    cluster = KubernetesTarget(
        KubeClient.from_config(str(kubeconfig)), poll_interval=0.05, crash_grace=0.2
    )
    try:
        assert asyncio.run(cluster.deploy(request(AGENT, "v1"), 30)).healthy
        name = canaries.canary_name(AGENT)
        fake.pods.set_crash(f"{NAMESPACE}/{name}", "CrashLoopBackOff")
        started = asyncio.run(cluster.start_canary(request(AGENT, "v2"), 30))
        assert not started.healthy
        assert "CrashLoopBackOff" in started.message
        assert fake.get_object("apps/v1", "deployments", name, NAMESPACE) is None
        assert cluster.canaries() == []
        assert cluster.running("production") == {AGENT: "v1"}
    finally:
        asyncio.run(cluster.close())


def test_connections_that_never_finish_their_headers_are_closed(
    kubeconfig: Path, tmp_path: Path, target: KubernetesTarget, kubelet: Kubelet
) -> None:
    assert asyncio.run(target.deploy(request(AGENT, "v1"), 30)).healthy
    log = tmp_path / "gateway.log"
    with gateway_cluster.gateway_process(kubeconfig, log, "--header-timeout", "1s") as running:
        wait_for(lambda: ok(running.get(AGENT)), what="v1 answering")
        port = int(running.url.rsplit(":", 1)[1])
        silent = socket.create_connection(("127.0.0.1", port), timeout=60)
        partial = socket.create_connection(("127.0.0.1", port), timeout=60)
        partial.sendall(b"GET / HTTP/1.1\r\nhost: support-bot--production.agents.test\r\n")
        for connection in (silent, partial):
            # Read until the gateway closes (a socket timeout here fails the test).
            assert read_until_closed(connection) == b""
        # Requests that finish their headers in time are served as before.
        assert ok(running.get(AGENT)) is not None
    assert "Traceback" not in log.read_text()


def read_until_closed(connection: socket.socket) -> bytes:
    data = b""
    try:
        while chunk := connection.recv(65536):
            data += chunk
    finally:
        connection.close()
    return data
