"""Assembles a running controller: store, git mirror, target, reconcile loop, API and router.

`serve` is what `shipyard serve` and `shipyard up` run: one process, one port, until a
signal stops it; agent processes stop with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import uvicorn

from controller.api import app as apps
from controller.api import auth, leadership, proxy, route_table, webhooks
from controller.metrics.collector import Metrics
from controller.reconciler import drivers, kube_workloads
from controller.reconciler.config import ControllerConfig
from controller.reconciler.controller import Controller
from controller.reconciler.target import Target
from controller.source.mirror import Mirror
from controller.store.sqlite import Store
from controller.targets.kubernetes.client import KubeClient
from controller.targets.kubernetes.leader import LeaderElection
from controller.targets.kubernetes.target import KubernetesTarget
from controller.targets.local.target import LocalTarget
from preview import gitlab
from preview.feedback import Notifier
from preview.github import DEFAULT_API_URL, GitHubNotifier

OnReady = Callable[[Controller], Awaitable[None]]


@dataclass(frozen=True)
class KubernetesSettings:
    """Where and how `--target kubernetes` runs agents."""

    kubeconfig: str | None = None
    context: str | None = None
    options: kube_workloads.ClusterOptions = field(default_factory=kube_workloads.ClusterOptions)
    leader_election: bool = True
    leader_namespace: str = "shipyard-system"


@dataclass(frozen=True)
class ApiSettings:
    tokens: auth.Tokens = field(default_factory=auth.Tokens)
    webhook_secret: str | None = None
    github_api_url: str = DEFAULT_API_URL
    github_token: str | None = field(default=None, repr=False)
    gitlab_api_url: str = gitlab.DEFAULT_API_URL
    gitlab_token: str | None = field(default=None, repr=False)

    def notifier(self) -> Notifier | None:
        """Pull or merge request feedback for whichever forge has a token."""
        if self.github_token:
            return GitHubNotifier(self.github_api_url, self.github_token)
        if self.gitlab_token:
            return gitlab.GitLabNotifier(self.gitlab_api_url, self.gitlab_token)
        return None


def build(
    config: ControllerConfig,
    api: ApiSettings | None = None,
    kubernetes: KubernetesSettings | None = None,
    standby: leadership.Standby | None = None,
) -> tuple[Controller, proxy.Router]:
    api = api or ApiSettings()
    config.state_dir.mkdir(parents=True, exist_ok=True)
    store = Store(config.database)
    mirror = Mirror(config.repo, config.mirror_dir)
    metrics = Metrics()  # one registry: the controller and the router record into it
    notifier = api.notifier()
    target: Target
    driver: drivers.Driver
    if kubernetes is None:
        local = LocalTarget()
        target, driver = local, drivers.LocalDriver(local)
    else:
        cluster = KubernetesTarget(
            KubeClient.from_config(kubernetes.kubeconfig, kubernetes.context)
        )
        driver = drivers.KubernetesDriver(
            cluster, kubernetes.options, config.repo, config.credentials
        )
        target = cluster
    controller = Controller(
        config, mirror, store, target, metrics=metrics, notifier=notifier, driver=driver
    )
    # On a cluster, agent traffic goes through its Ingress, not through us.
    routes: Mapping[str, proxy.Upstream] = {}
    if isinstance(target, LocalTarget):
        table = route_table.RouteTable(controller.url, target.serving())
        target.on_route_change(table.switch)
        routes = table.hosts  # a live view: the lambda below hands out no copy
    router = proxy.Router(
        apps.create_app(
            controller, api.tokens, webhooks.WebhookSettings(api.webhook_secret), standby
        ),
        upstreams=lambda: routes,
        agent_hosts=proxy.host_pattern(config.url_template),
        metrics=metrics,
    )
    return controller, router


async def serve(
    config: ControllerConfig,
    host: str,
    port: int,
    *,
    on_ready: OnReady | None = None,
    api: ApiSettings | None = None,
    kubernetes: KubernetesSettings | None = None,
) -> None:
    standby = leadership.Standby()
    controller, router = build(config, api, kubernetes, standby)
    server = uvicorn.Server(
        uvicorn.Config(
            router,
            host=host,
            port=port,
            lifespan="off",
            log_level="warning",
            server_header=False,
            date_header=False,
        )
    )
    work = controller.run
    if kubernetes is not None and kubernetes.leader_election:
        assert isinstance(controller.target, KubernetesTarget)
        election = LeaderElection(controller.target.client, kubernetes.leader_namespace)
        standby.follow(election)
        loop_task = asyncio.create_task(election.run(work), name="shipyard-leader-election")
    else:
        loop_task = asyncio.create_task(work(), name="shipyard-controller")
    ready_task = asyncio.create_task(_announce(controller, on_ready)) if on_ready else None
    try:
        await server.serve()
    finally:
        for task in (loop_task, ready_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        await controller.close()
        await router.aclose()
        controller.store.close()


async def _announce(controller: Controller, on_ready: OnReady) -> None:
    await controller.first_sync.wait()
    try:
        await on_ready(controller)
    except Exception:  # a broken banner must not take the controller down
        logging.getLogger("shipyard").exception("on_ready callback failed")
