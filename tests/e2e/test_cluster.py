"""The Kubernetes scenarios again, on a real cluster (kind in CI), with a real agent image."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

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
from tests.integration.controller_harness import preview_of

IMAGE = os.environ.get("SHIPYARD_E2E_IMAGE", "shipyard-example-agent:e2e")
NAMESPACE = "shipyard-e2e-production"


def manifest(name: str, temperature: float = 0.2, image: str = IMAGE) -> str:
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
  rollout: {{progressDeadlineSeconds: 60}}
"""


def scenario(upstream: Upstream, tmp_path: Path) -> None:
    config = ControllerConfig(repo=str(upstream.bare), state_dir=tmp_path / "state")
    options = kube_workloads.ClusterOptions(production_namespace=NAMESPACE)
    client = KubeClient.from_config(os.environ["SHIPYARD_E2E_KUBECONFIG"])
    target = KubernetesTarget(client)

    async def main() -> None:
        store = Store(config.database)
        controller = Controller(
            config, Mirror(config.repo, config.mirror_dir), store, target,
            driver=drivers.KubernetesDriver(target, options, config.repo),
        )  # fmt: skip

        async def sync() -> None:
            await controller.sync_once()
            await controller.wait_idle()

        try:
            await sync()
            assert controller.statuses[naming.PRODUCTION].conditions["Ready"].status
            upstream.commit({"agents/alpha.yaml": manifest("alpha", 0.9)}, branch="feature")
            upstream.push("feature")
            await sync()
            environment = preview_of("feature")
            assert client.get("v1", "Namespace", environment) is not None
            before = client.writes()
            object.__setattr__(controller.config, "resync_interval", 0.0)
            await sync()
            assert client.writes() == before, "a sync with nothing changed wrote"
            upstream.commit(
                {"agents/beta.yaml": manifest("beta", image="no/such:image")}, branch="main"
            )
            upstream.push("main")
            await sync()
            last = controller.store.rollouts("beta", naming.PRODUCTION)[-1]
            assert last.result is RolloutResult.ROLLED_BACK
            upstream.push(":feature")
            await sync()
            namespace = client.get("v1", "Namespace", environment)
            assert namespace is None or namespace["status"]["phase"] == "Terminating"
        finally:
            await controller.close()
            store.close()
            client.delete("v1", "Namespace", NAMESPACE)

    asyncio.run(main())


def test_previews_promotion_and_rollback_on_a_real_cluster(
    upstream: Upstream, tmp_path: Path
) -> None:
    upstream.commit(
        {"agents/alpha.yaml": manifest("alpha"), "agents/beta.yaml": manifest("beta")},
        branch="main",
    )
    upstream.push("main")
    scenario(upstream, tmp_path)
