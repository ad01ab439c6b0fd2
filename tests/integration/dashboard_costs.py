"""What rendering each dashboard page costs the store and the API server, at N agents.

Shared by `test_dashboard_scale.py` and `bench/dashboard_pages.py`. The controller runs
on the Kubernetes target against the project's fake API server (1,000 agents cost no
processes), with the real store, driver and official client. Each page is fetched over
ASGI from the real app while the store reports every SQL statement and the client
counts every call it makes to the API server (discovery, answered from its cache, aside).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from controller.api.app import create_app
from controller.api.ui import live
from controller.reconciler import drivers, kube_workloads
from controller.reconciler.config import ControllerConfig
from controller.reconciler.controller import Controller
from controller.source.mirror import Mirror
from controller.store.sqlite import Store
from controller.targets.kubernetes.client import KubeClient
from controller.targets.kubernetes.target import KubernetesTarget
from tests.fake_apiserver.server import FakeApiServer
from tests.gitrepos import Upstream

PAGES = ("/ui/", "/ui/environments/production/agents/agent-0000", "/ui/events")


@dataclass(frozen=True)
class Cost:
    statements: int  # SQL statements the store ran
    api_calls: int  # calls to the Kubernetes API server
    seconds: float  # the second render (the first warms caches and imports)


def manifest(index: int) -> str:
    return f"""\
apiVersion: shipyard.dev/v1alpha1
kind: Agent
metadata: {{name: agent-{index:04d}}}
spec:
  image: ghcr.io/acme/agent:1.0.0
  model: {{provider: fake, name: echo}}
  prompt: {{system: You are agent {index}.}}
"""


def page_costs(agents: int, root: Path, fake: FakeApiServer) -> dict[str, Cost]:
    """Each page's cost with `agents` agents in production."""
    upstream = Upstream(root / "upstream")
    upstream.commit({f"agents/agent-{i:04d}.yaml": manifest(i) for i in range(agents)})
    upstream.push("main")
    config = ControllerConfig(repo=str(upstream.bare), state_dir=root / "state", poll_interval=3600)

    async def main() -> dict[str, Cost]:
        store = Store(config.database)
        client = KubeClient.from_config(str(fake.kubeconfig(root / "kubeconfig")))
        target = KubernetesTarget(client, poll_interval=0.25)
        controller = Controller(
            config,
            Mirror(config.repo, config.mirror_dir),
            store,
            target,
            driver=drivers.KubernetesDriver(target, kube_workloads.ClusterOptions(), config.repo),
        )

        def api_calls() -> int:
            return sum(count for verb, count in client.calls.items() if verb != "discovery")

        costs: dict[str, Cost] = {}
        try:
            await controller.sync_once()
            await controller.wait_idle()
            transport = httpx.ASGITransport(app=create_app(controller))
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as web:
                for path in PAGES:
                    await web.get(path)  # once cold (imports, first reads), then measured
                    # after the shared fingerprint has gone stale, so the measured render
                    # computes its own, as a page opened a second later does.
                    await asyncio.sleep(2 * live.Fingerprints(controller).fresh)
                    statements: list[str] = []
                    calls_before = api_calls()
                    store.on_statement(statements.append)
                    started = time.perf_counter()
                    page = await web.get(path)
                    seconds = time.perf_counter() - started
                    store.on_statement(None)
                    if page.status_code != 200:
                        raise AssertionError(f"{path}: {page.status_code} {page.text[:500]}")
                    listed = page.text.count('href="/ui/environments/production/agents/')
                    if path == "/ui/" and listed != agents:
                        raise AssertionError(f"the overview lists {listed} of {agents} agents")
                    costs[path] = Cost(len(statements), api_calls() - calls_before, seconds)
        finally:
            await controller.close()
            store.close()
        return costs

    return asyncio.run(main())
