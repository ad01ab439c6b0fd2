"""The real controller on the Kubernetes target, driven step by step in the test's process.

Tests that sync, wait and look build it here as `shipyard serve` does — a store, a mirror
of the upstream, the target and its Kubernetes driver — and close it the same way.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from controller.metrics.collector import Metrics
from controller.reconciler import drivers, kube_workloads
from controller.reconciler.config import ControllerConfig
from controller.reconciler.controller import Controller
from controller.source.mirror import Mirror
from controller.store.sqlite import Store
from controller.targets.kubernetes.client import KubeClient
from controller.targets.kubernetes.target import KubernetesTarget
from tests.gitrepos import Upstream

Scenario = Callable[[Controller, KubernetesTarget], Awaitable[None]]


def config(upstream: Upstream, tmp_path: Path, **settings: Any) -> ControllerConfig:
    """Syncs only when the test says so (the poll interval is an hour)."""
    return ControllerConfig(
        repo=str(upstream.bare), state_dir=tmp_path / "state", poll_interval=3600, **settings
    )


@asynccontextmanager
async def controller_on(
    config: ControllerConfig,
    target: KubernetesTarget,
    options: kube_workloads.ClusterOptions,
    *,
    metrics: Metrics | None = None,
) -> AsyncIterator[Controller]:
    store = Store(config.database)
    controller = Controller(
        config,
        Mirror(config.repo, config.mirror_dir),
        store,
        target,
        metrics=metrics,
        driver=drivers.KubernetesDriver(target, options, config.repo),
    )
    try:
        yield controller
    finally:
        await controller.close()
        store.close()


def run(
    config: ControllerConfig,
    options: kube_workloads.ClusterOptions,
    kubeconfig: Path,
    scenario: Scenario,
    *,
    poll_interval: float = 0.05,
    client_backoff_base: float | None = None,
) -> None:
    """`scenario` against a controller on the cluster in `kubeconfig`, then close it."""

    async def main() -> None:
        client = KubeClient.from_config(str(kubeconfig))
        if client_backoff_base is not None:
            client.backoff_base = client_backoff_base
        target = KubernetesTarget(client, poll_interval=poll_interval)
        async with controller_on(config, target, options) as controller:
            await scenario(controller, target)

    asyncio.run(main())


async def sync(controller: Controller) -> None:
    """One sync, as the loop would run it, and all the work it queued."""
    await controller.sync_once()
    await controller.wait_idle()
