"""Issue #12's Kubernetes truths on a real cluster (kind in CI): what the fake API server
shows in the integration tests, checked against a real kubelet, scheduler and API server.

- A version whose container crashes (the example agent cannot bind `HOST`) or whose image
  cannot be pulled fails its rollout early with the kubelet's reason, well before the
  Deployment's own progress deadline, and is rolled back.
- A Deployment deleted behind Shipyard's back is drift: applied again, not a failure.
- `shipyard_agent_version_info` carries the commit.
- `shipyard logs` reads the agent's pods through `shipyard serve`, `--previous` included.
- `shipyard validate --target kubernetes` refuses what this cluster refuses.

Skipped without a cluster (conftest.py); `.github/workflows/e2e.yml` runs them.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest

from controller.reconciler import drivers, kube_workloads
from controller.reconciler.config import ControllerConfig
from controller.reconciler.controller import Controller
from controller.source.mirror import Mirror
from controller.store.records import RolloutResult
from controller.store.sqlite import Store
from controller.targets.kubernetes.client import KubeClient
from controller.targets.kubernetes.target import KubernetesTarget
from preview import naming
from tests.gitrepos import Upstream
from tests.integration.controller_harness import Shipyard, wait_for
from tests.integration.test_kubernetes_serve import kubernetes_flags

IMAGE = os.environ.get("SHIPYARD_E2E_IMAGE", "shipyard-example-agent:e2e")
KUBECONFIG = os.environ.get("SHIPYARD_E2E_KUBECONFIG", "")
SHIPYARD = str(Path(sys.executable).parent / "shipyard")
DEADLINE = 300  # the Deployment's own progress deadline: crash states must beat it


def manifest(name: str, *, temperature: float = 0.2, image: str = IMAGE, extra: str = "") -> str:
    return f"""\
apiVersion: shipyard.dev/v1alpha1
kind: Agent
metadata:
  name: {name}
spec:
  image: {image}
  port: 8080
  model: {{provider: fake, name: echo, parameters: {{temperature: {temperature}}}}}
  prompt: {{system: You are {name}.}}
  rollout: {{progressDeadlineSeconds: {DEADLINE}}}
{extra}"""


Scenario = Callable[[Controller, KubernetesTarget, KubeClient], Awaitable[None]]


def run(upstream: Upstream, tmp_path: Path, namespace: str, scenario: Scenario) -> None:
    """The real controller against the cluster, production in `namespace` (removed after)."""
    config = ControllerConfig(repo=str(upstream.bare), state_dir=tmp_path / "state")
    options = kube_workloads.ClusterOptions(production_namespace=namespace)
    client = KubeClient.from_config(KUBECONFIG)
    target = KubernetesTarget(client)

    async def main() -> None:
        store = Store(config.database)
        controller = Controller(
            config, Mirror(config.repo, config.mirror_dir), store, target,
            driver=drivers.KubernetesDriver(target, options, config.repo),
        )  # fmt: skip
        try:
            await scenario(controller, target, client)
        finally:
            await controller.close()
            store.close()
            client.delete("v1", "Namespace", namespace)

    asyncio.run(main())


async def sync(controller: Controller) -> None:
    await controller.sync_once()
    await controller.wait_idle()


@pytest.mark.parametrize(
    ("broken", "reasons"),
    [
        # The example agent exits at start when it cannot bind its HOST.
        ('  env: [{name: HOST, value: "256.0.0.1"}]\n', ("CrashLoopBackOff", "Error")),
        ("", ("ImagePullBackOff", "ErrImagePull")),
    ],
    ids=["crash-loop", "image-pull"],
)
def test_a_crashing_version_fails_before_its_deadline_and_is_rolled_back(
    upstream: Upstream, tmp_path: Path, broken: str, reasons: tuple[str, ...]
) -> None:
    namespace = f"shipyard-e2e-crash-{len(broken)}"
    upstream.commit({"agents/alpha.yaml": manifest("alpha")}, branch="main")
    upstream.push("main")

    async def scenario(controller: Controller, target: KubernetesTarget, _: KubeClient) -> None:
        await sync(controller)
        good = target.running(naming.PRODUCTION)["alpha"]
        image = IMAGE if broken else "registry.invalid/no/such:image"
        bad = manifest("alpha", temperature=0.9, image=image, extra=broken)
        upstream.commit({"agents/alpha.yaml": bad}, branch="main")
        upstream.push("main")
        started = time.monotonic()
        await sync(controller)
        last = controller.store.rollouts("alpha", naming.PRODUCTION)[-1]
        assert last.result is RolloutResult.ROLLED_BACK, last
        assert any(reason in last.reason for reason in reasons), last.reason
        # Ended by the pod state, not by the Deployment's progress deadline.
        assert time.monotonic() - started < DEADLINE
        assert target.running(naming.PRODUCTION)["alpha"] == good

    run(upstream, tmp_path, namespace, scenario)


def test_a_deleted_deployment_is_applied_again_and_the_commit_is_labelled(
    upstream: Upstream, tmp_path: Path
) -> None:
    namespace = "shipyard-e2e-drift"
    sha = upstream.commit({"agents/alpha.yaml": manifest("alpha")}, branch="main")
    upstream.push("main")

    async def scenario(
        controller: Controller, target: KubernetesTarget, client: KubeClient
    ) -> None:
        await sync(controller)
        metrics = generate_latest(controller.metrics.registry).decode()
        (info,) = [
            line for line in metrics.splitlines() if line.startswith("shipyard_agent_version_info{")
        ]
        assert f'commit="{sha[:12]}"' in info, info
        first = client.get("apps/v1", "Deployment", "alpha", namespace)
        assert first is not None
        assert client.delete("apps/v1", "Deployment", "alpha", namespace)
        object.__setattr__(controller.config, "resync_interval", 0.0)
        await sync(controller)
        again = wait_for(lambda: client.get("apps/v1", "Deployment", "alpha", namespace))
        assert again["metadata"]["uid"] != first["metadata"]["uid"]
        reasons = [e.reason for e in controller.store.events(naming.PRODUCTION, "alpha")]
        assert "DriftDetected" in reasons
        failed = (RolloutResult.FAILED, RolloutResult.ROLLED_BACK)
        assert not [
            r for r in controller.store.rollouts("alpha", naming.PRODUCTION) if r.result in failed
        ]

    run(upstream, tmp_path, namespace, scenario)


def kubectl(*args: str) -> str:
    done = subprocess.run(
        ["kubectl", "--kubeconfig", KUBECONFIG, *args],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def shipyard_logs(shipyard: Shipyard, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SHIPYARD, "logs", "alpha", "-e", "production", "--server", shipyard.api(""), *args],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_shipyard_logs_reads_the_pods_including_the_previous_container(
    upstream: Upstream, tmp_path: Path
) -> None:
    namespace = "shipyard-production"  # serve's default production namespace
    upstream.commit({"agents/alpha.yaml": manifest("alpha")}, branch="main")
    upstream.push("main")
    shipyard = Shipyard(upstream.bare, tmp_path / "state", *kubernetes_flags(Path(KUBECONFIG)))
    # A real cluster takes longer than `start()`'s readiness wait to run the first pods.
    shipyard.process_only()
    try:
        wait_for(
            lambda: any(a["ready"] for a in shipyard.environments()["production"]["agents"]),
            what="alpha to be ready",
            timeout=300,
        )
        pod = kubectl(
            "get", "pods", "-n", namespace, "-l", "shipyard.dev/agent=alpha",
            "-o", "jsonpath={.items[0].metadata.name}",
        )  # fmt: skip
        current = shipyard_logs(shipyard)
        assert current.returncode == 0, current.stderr
        assert f"[pod/{pod}/agent]" in current.stdout
        assert "listening on http://0.0.0.0:8080/" in current.stdout

        # End the container (the agent exits on SIGTERM); the kubelet restarts it.
        kubectl(
            "exec", "-n", namespace, pod, "--",
            "python3", "-c", "import os, signal; os.kill(1, signal.SIGTERM)",
        )  # fmt: skip

        def restarted() -> bool:
            counts = kubectl(
                "get", "pod", "-n", namespace, pod,
                "-o", "jsonpath={.status.containerStatuses[0].restartCount}",
            )  # fmt: skip
            return int(counts or 0) >= 1

        wait_for(restarted, what="the container to restart", timeout=120)
        previous = shipyard_logs(shipyard, "--previous")
        assert previous.returncode == 0, previous.stderr
        assert "listening on http://0.0.0.0:8080/" in previous.stdout
    finally:
        shipyard.close()
        KubeClient.from_config(KUBECONFIG).delete("v1", "Namespace", namespace)


def write_agent(repo: Path, body: str) -> Path:
    (repo / "agents").mkdir(parents=True, exist_ok=True)
    path = repo / "agents" / "alpha.yaml"
    path.write_text(body)
    return path


def validate(repo: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SHIPYARD, "validate", "--target", "kubernetes", str(repo)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_validate_for_kubernetes_refuses_what_the_cluster_refuses(tmp_path: Path) -> None:
    greedy = "  resources:\n    requests: {cpu: '2'}\n    limits: {cpu: '1'}\n"
    write_agent(tmp_path, manifest("alpha", extra=greedy))
    refused = validate(tmp_path)
    assert refused.returncode != 0
    assert "spec.resources.requests.cpu" in refused.stdout + refused.stderr

    # The real API server refuses the same container resources (server-side dry run).
    deployment: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "greedy", "namespace": "default"},
        "spec": {
            "selector": {"matchLabels": {"app": "greedy"}},
            "template": {
                "metadata": {"labels": {"app": "greedy"}},
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": IMAGE,
                            "resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}},
                        }
                    ]
                },
            },
        },
    }
    dry = subprocess.run(
        [
            *("kubectl", "--kubeconfig", KUBECONFIG, "apply"),
            *("--server-side", "--dry-run=server", "-f", "-"),
        ],
        input=json.dumps(deployment),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert dry.returncode != 0
    assert "must be less than or equal to cpu limit" in dry.stderr

    write_agent(
        tmp_path,
        manifest("alpha").replace(f"  image: {IMAGE}\n", "  run: {command: [python3, agent.py]}\n"),
    )
    imageless = validate(tmp_path)
    assert imageless.returncode != 0
    assert "spec.image" in imageless.stdout + imageless.stderr

    write_agent(tmp_path, manifest("alpha"))
    accepted = validate(tmp_path)
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
