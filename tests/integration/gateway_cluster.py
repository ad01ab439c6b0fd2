"""A cluster on this machine for gateway tests: fake API server, fake kubelet, gateway.

The kubelet runs `pod_agent.py` for the image `IMAGE`; `shipyard gateway` runs as a
real process against the fake API server; agent versions are deployed by the real
Kubernetes target from objects rendered as the controller renders them. The fixtures
`fake`, `kubeconfig`, `kubelet` and `gateway` serve a test module that imports them.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import yaml

from controller.metrics.gateway_scrape import GATEWAY_PODS
from controller.reconciler import kube_workloads
from controller.targets.kubernetes import rendering
from controller.targets.kubernetes.client import KubeClient
from controller.targets.kubernetes.target import KubeRequest
from tests.fake_apiserver.kubelet import Image, Kubelet
from tests.fake_apiserver.server import FakeApiServer
from tests.integration.controller_harness import free_port

IMAGE = "registry.test/pod-agent:1"
BROKEN_IMAGE = "registry.test/pod-agent-broken:1"  # answers 500 to everything but /healthz
GATEWAY_IMAGE = "registry.test/shipyard:1"
URL_TEMPLATE = "http://{agent}--{env}.agents.test/"
NAMESPACE = "shipyard-production"
# How the controller maps environments onto this cluster: production in NAMESPACE,
# each agent's URL the host the gateway routes by.
CLUSTER_OPTIONS = kube_workloads.ClusterOptions(
    url_template=URL_TEMPLATE, production_namespace=NAMESPACE
)
POD_AGENT = Path(__file__).with_name("pod_agent.py")
SHIPYARD = Path(sys.executable).with_name("shipyard")
T = TypeVar("T")


def images() -> dict[str, Image]:
    return {
        IMAGE: Image((sys.executable, str(POD_AGENT))),
        BROKEN_IMAGE: Image((sys.executable, str(POD_AGENT)), env={"POD_AGENT_STATUS": "500"}),
        GATEWAY_IMAGE: Image((str(SHIPYARD), "gateway")),
    }


def request(agent: str, version: str, replicas: int = 1) -> KubeRequest:
    """One version of `agent` in production, rendered as the controller renders it."""
    workload = rendering.Workload(
        name=agent,
        environment="production",
        version=version,
        commit="0" * 40,
        image=IMAGE,
        model_provider="fake",
        model_name="echo",
        prompt=f"You are {agent} {version}.",
        replicas=replicas,
        host=f"{agent}--production.agents.test",
        progress_deadline_seconds=30,
    )
    settings = rendering.EnvironmentSettings("production", NAMESPACE, is_preview=False)
    namespace = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": NAMESPACE},
    }
    return KubeRequest(
        environment="production",
        agent=agent,
        version=version,
        namespace=NAMESPACE,
        objects=tuple(rendering.workload_objects(workload, settings)),
        namespace_objects=(namespace,),
    )


def agent_manifest(
    name: str, prompt: str, rollout: str = "", *, image: str = IMAGE, env: str = ""
) -> str:
    """An Agent whose pods run `image` here, with the fake model and `prompt`. `env` (lines
    under `spec`) and `rollout` (lines under `spec.rollout`, after its 30 s progress
    deadline) are YAML text, indented to sit there."""
    return f"""\
apiVersion: shipyard.dev/v1alpha1
kind: Agent
metadata:
  name: {name}
spec:
  image: {image}
  model:
    provider: fake
    name: echo
  prompt:
    system: {prompt}
{env}  rollout:
    progressDeadlineSeconds: 30
{rollout}"""


@dataclass
class Gateway:
    url: str
    process: subprocess.Popen[bytes]

    def get(
        self, agent: str, path: str = "/", client: httpx.Client | None = None
    ) -> httpx.Response:
        host = f"{agent}--production.agents.test"
        if client is not None:
            return client.get(self.url + path, headers={"host": host})
        return httpx.get(self.url + path, headers={"host": host}, timeout=10)


@contextmanager
def gateway_process(kubeconfig: Path, log: Path, *extra: str) -> Iterator[Gateway]:
    """`shipyard gateway` against the cluster in `kubeconfig`, once it answers /readyz."""
    port = free_port()
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(SHIPYARD), "gateway", "--kubeconfig", str(kubeconfig), "--port", str(port),
             "--url-template", URL_TEMPLATE, *extra],
            stdout=output,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    running = Gateway(f"http://127.0.0.1:{port}", process)
    try:
        wait_for(lambda: _ready(running), what=f"the gateway to be ready ({log})")
        yield running
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def ready_gateways(client: KubeClient) -> list[str] | None:
    """The URLs of both gateway pods once both are ready."""
    urls = []
    for pod in client.list("v1", "Pod", None, GATEWAY_PODS):
        status = pod.get("status") or {}
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in status.get("conditions") or []
        )
        if ready and status.get("podIP"):
            urls.append(f"http://{status['podIP']}:8080")
    return sorted(urls) if len(urls) == 2 else None


@pytest.fixture
def fake() -> Iterator[FakeApiServer]:
    server = FakeApiServer(ready_delay=0.05).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def kubeconfig(fake: FakeApiServer, tmp_path: Path) -> Path:
    return fake.kubeconfig(tmp_path / "kubeconfig")


@pytest.fixture
def kubelet(fake: FakeApiServer, tmp_path: Path) -> Iterator[Kubelet]:
    """Runs the pods of `images()` as processes, their logs under `tmp_path / "pods"`."""
    running = Kubelet(fake, images(), log_dir=tmp_path / "pods").start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def gateway(kubeconfig: Path, tmp_path: Path, kubelet: Kubelet) -> Iterator[Gateway]:
    with gateway_process(kubeconfig, tmp_path / "gateway.log") as running:
        yield running


def _ready(running: Gateway) -> bool:
    if running.process.poll() is not None:
        raise AssertionError(f"the gateway exited with {running.process.returncode}")
    try:
        return httpx.get(running.url + "/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def wait_for(check: Callable[[], T | None], timeout: float = 30.0, what: str = "") -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or check}")


GATEWAY_MANIFEST = Path(__file__).parents[2] / "manifests" / "gateway.yaml"
GATEWAY_NAMESPACE = "shipyard-system"


def gateway_pods(kubeconfig: Path, replicas: int = 2) -> list[dict[str, Any]]:
    """`manifests/gateway.yaml`'s Deployment as the kubelet can run it: the image is
    `shipyard gateway` against the fake, bound to the pod's own address (no network
    namespace here), with the ConfigMap and Namespace it needs."""
    (deployment,) = (
        obj
        for obj in yaml.safe_load_all(GATEWAY_MANIFEST.read_text())
        if obj["kind"] == "Deployment"
    )
    deployment["spec"]["replicas"] = replicas
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    container["image"] = GATEWAY_IMAGE
    container["command"] = [str(SHIPYARD)]
    container["args"] = ["gateway", "--kubeconfig", str(kubeconfig)]
    container["env"] = [
        {"name": "SHIPYARD_GATEWAY_HOST", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}
        if variable["name"] == "SHIPYARD_GATEWAY_HOST"
        else variable
        for variable in container["env"]
    ]
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": GATEWAY_NAMESPACE}}
    config = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "shipyard-config", "namespace": GATEWAY_NAMESPACE},
        "data": {"SHIPYARD_URL_TEMPLATE": URL_TEMPLATE},
    }
    return [namespace, config, deployment]
