"""Assembles a running controller: store, git mirror, target, reconcile loop, API and router.

`serve` is what `shipyard serve` and `shipyard up` run: one process, one port, until a
signal stops it; agent processes stop with it (see `shutdown` for how SIGTERM and SIGINT
end it gracefully).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import httpx
import uvicorn

from controller.api import app as apps
from controller.api import (
    auth,
    connections,
    leadership,
    process_limits,
    proxy,
    recording,
    route_table,
    shutdown,
    tracing,
    upstream_http,
    webhooks,
)
from controller.api.ui.rates import RateHistory
from controller.api.webhook_binding import ServedRepositories
from controller.api.webhook_intake import IntakeLimits
from controller.metrics import gateway_scrape
from controller.metrics.collector import Metrics
from controller.reconciler import disk_pruning, drivers, kube_workloads
from controller.reconciler.config import ControllerConfig
from controller.reconciler.controller import Controller
from controller.reconciler.target import Target
from controller.source.mirror import Mirror
from controller.store.recordings import Recordings
from controller.store.sqlite import Store
from controller.targets.kubernetes.client import KubeClient
from controller.targets.kubernetes.gateway_rendering import GatewayRef
from controller.targets.kubernetes.leader import LeaderElection
from controller.targets.kubernetes.target import KubernetesTarget
from controller.targets.local.processes import ProcessTable, RestartPolicy
from controller.targets.local.target import LocalTarget
from preview import gitea, gitlab
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
    http_route_gateway: tuple[str, str] | None = None  # canary weights as HTTPRoutes there


@dataclass(frozen=True)
class ApiSettings:
    tokens: auth.Tokens = field(default_factory=auth.Tokens)
    webhook_secret: str | None = None
    github_api_url: str = DEFAULT_API_URL
    github_token: str | None = field(default=None, repr=False)
    gitlab_api_url: str = gitlab.DEFAULT_API_URL
    gitlab_token: str | None = field(default=None, repr=False)
    github_repo: str | None = None  # what GitHub deliveries must name [default: from the remote]
    gitlab_project: str | None = None  # the same for GitLab
    gitea_repo: str | None = None  # and for Gitea / Forgejo
    gitea_api_url: str | None = None  # Gitea / Forgejo has no public default host
    gitea_token: str | None = field(default=None, repr=False)
    webhook_limits: IntakeLimits = field(default_factory=IntakeLimits)
    header_timeout: float = 60.0  # a connection must finish each request's headers in time
    # an agent's longest silence before a 504 or a cut stream
    agent_timeout: float = upstream_http.DEFAULT_AGENT_TIMEOUT_SECONDS
    otlp_endpoint: str | None = None  # where request spans go (OTLP/HTTP); None: kept in memory
    trace_sample_ratio: float | None = None  # share of new traces exported; None: OTEL_* or 1

    def notifier(self) -> Notifier | None:
        """Pull or merge request feedback for whichever forge has a token."""
        if self.github_token:
            return GitHubNotifier(self.github_api_url, self.github_token)
        if self.gitlab_token:
            return gitlab.GitLabNotifier(self.gitlab_api_url, self.gitlab_token)
        if self.gitea_token:
            return gitea.GiteaNotifier(self.gitea_api_url, self.gitea_token)
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
    traffic: RateHistory | None = None  # the dashboard's default: this process's registry
    driver: drivers.Driver
    if kubernetes is None:
        restarts = RestartPolicy(
            config.restart_backoff, config.restart_backoff_cap, config.restart_backoff_reset
        )
        local = LocalTarget(ProcessTable(restart_policy=restarts))
        target, driver = local, drivers.LocalDriver(local)
    else:
        route_gateway = kubernetes.http_route_gateway
        cluster = KubernetesTarget(
            KubeClient.from_config(kubernetes.kubeconfig, kubernetes.context),
            http_route_gateway=GatewayRef(*route_gateway) if route_gateway else None,
        )
        driver = drivers.KubernetesDriver(
            cluster, kubernetes.options, config.repo, config.credentials
        )
        # Canary analysis reads the requests the gateways saw (docs/rollouts.md).
        cluster.on_close(
            gateway_scrape.GatewayScraper(cluster.client, metrics.windows).start().stop
        )
        # So do the dashboard's charts: agent traffic passes the gateways, not us.
        traffic = gateway_traffic(cluster)
        target = cluster
    controller = Controller(
        config, mirror, store, target, metrics=metrics, notifier=notifier, driver=driver
    )
    # On a cluster, agent traffic goes through its Ingress, not through us: nothing to
    # trace or record here.
    traced = observing(controller, api) if kubernetes is None else None
    routes: Mapping[str, proxy.Upstream] = {}
    if isinstance(target, LocalTarget):
        table = route_table.RouteTable(controller.url, target.serving())
        target.on_route_change(table.switch)
        target.on_canary_change(table.set_canary)
        routes = table.hosts  # a live view: the lambda below hands out no copy
    router = proxy.Router(
        apps.create_app(
            controller,
            api.tokens,
            webhooks.WebhookSettings(
                api.webhook_secret,
                limits=api.webhook_limits,
                served=ServedRepositories.derive(
                    config.repo, api.github_repo, api.gitlab_project, api.gitea_repo
                ),
            ),
            standby,
            traced=traced,
            recordings=traced.inner.recordings
            if traced is not None and isinstance(traced.inner, recording.Recorder)
            else None,
            traffic=traffic,
        ),
        upstreams=lambda: routes,
        agent_hosts=proxy.host_pattern(config.url_template),
        metrics=metrics,
        tracing=traced,
        agent_timeout=api.agent_timeout,
    )
    return controller, router


def gateway_traffic(cluster: KubernetesTarget) -> RateHistory:
    """The dashboard's charts on a cluster: read from every gateway pod's `/metrics`."""
    http = httpx.Client(timeout=gateway_scrape.SCRAPE_TIMEOUT)
    cluster.on_close(http.close)
    return RateHistory(
        lambda: gateway_scrape.gateway_readings(cluster.client, http),
        source="the gateways' metrics",
    )


def observing(controller: Controller, api: ApiSettings) -> tracing.Tracing:
    """The router's tracing, with recording inside each request's span."""
    recorder = recording.Recorder(
        Recordings(controller.config.database, enforce_every_seconds=1.0),
        lambda *key: recording_policy(controller, *key),
    )
    return tracing.Tracing(
        api.otlp_endpoint,
        commit_of=lambda *key: commit_of(controller, *key),
        inner=recorder,
        sample_ratio=api.trace_sample_ratio,
    )


def recording_policy(
    controller: Controller, agent: str, environment: str, version: str
) -> recording.Policy | None:
    """What the version's manifest says about recording its traffic."""
    revision = controller.store.revision_serving(agent, environment, version)
    if revision is None:
        return None
    return recording.policy_of_manifest(json.loads(revision.manifest_json))


def commit_of(controller: Controller, agent: str, environment: str, version: str) -> str | None:
    """The commit the process serving `version` was started from (for span attributes)."""
    process = controller.target.process(environment, agent)
    return process.spec.commit if process is not None and process.spec.version == version else None


async def serve(
    config: ControllerConfig,
    host: str,
    port: int,
    *,
    on_ready: OnReady | None = None,
    api: ApiSettings | None = None,
    kubernetes: KubernetesSettings | None = None,
) -> None:
    process_limits.raise_open_files_limit()
    standby = leadership.Standby()
    controller, router = build(config, api, kubernetes, standby)
    server = shutdown.Server(
        uvicorn.Config(
            router,
            host=host,
            port=port,
            lifespan="off",
            http=connections.protocol_with_header_timeout(
                (api or ApiSettings()).header_timeout, router
            ),
            log_level="warning",
            # Its INFO lines are dropped at this level anyway, after their arguments were
            # formatted per request (the path quoted again): ~2% of the router's CPU.
            access_log=False,
            server_header=False,
            date_header=False,
            timeout_graceful_shutdown=int(shutdown.GRACEFUL_HTTP_SECONDS),
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
    prune_task = asyncio.create_task(
        disk_pruning.run(controller, config.prune_interval), name="shipyard-disk-pruning"
    )
    signals = shutdown.Signals(server, on_request=loop_task.cancel)
    with signals.installed():
        try:
            await server.serve()
        finally:
            for task in (loop_task, ready_task, prune_task):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
            await shutdown.settle(controller.wait_idle, signals)
            await controller.close()
            await router.aclose()
            if router.tracing is not None:
                # Flushes queued spans and recorded requests.
                await asyncio.to_thread(router.tracing.shutdown)
            controller.store.close()


async def _announce(controller: Controller, on_ready: OnReady) -> None:
    await controller.first_sync.wait()
    try:
        await on_ready(controller)
    except Exception:  # a broken banner must not take the controller down
        logging.getLogger("shipyard").exception("on_ready callback failed")
