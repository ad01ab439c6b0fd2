"""Assembles a running controller: store, git mirror, target, reconcile loop, API and router.

`serve` is what `shipyard serve` and `shipyard up` run: one process, one port, until a
signal stops it; agent processes stop with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import uvicorn

from controller.api import app as apps
from controller.api import auth, proxy, webhooks
from controller.metrics.collector import Metrics
from controller.reconciler.config import ControllerConfig
from controller.reconciler.controller import Controller
from controller.source.mirror import Mirror
from controller.store.sqlite import Store
from controller.targets.local.target import LocalTarget
from preview.github import DEFAULT_API_URL, GitHubNotifier

OnReady = Callable[[Controller], Awaitable[None]]


@dataclass(frozen=True)
class ApiSettings:
    tokens: auth.Tokens = field(default_factory=auth.Tokens)
    webhook_secret: str | None = None
    github_api_url: str = DEFAULT_API_URL
    github_token: str | None = field(default=None, repr=False)


def build(
    config: ControllerConfig, api: ApiSettings | None = None
) -> tuple[Controller, proxy.Router]:
    api = api or ApiSettings()
    config.state_dir.mkdir(parents=True, exist_ok=True)
    store = Store(config.database)
    mirror = Mirror(config.repo, config.mirror_dir)
    metrics = Metrics()  # one registry: the controller and the router record into it
    notifier = GitHubNotifier(api.github_api_url, api.github_token) if api.github_token else None
    controller = Controller(
        config, mirror, store, LocalTarget(), metrics=metrics, notifier=notifier
    )
    router = proxy.Router(
        apps.create_app(controller, api.tokens, webhooks.WebhookSettings(api.webhook_secret)),
        upstreams=lambda: upstreams(controller),
        agent_hosts=proxy.host_pattern(config.url_template),
        metrics=metrics,
    )
    return controller, router


def upstreams(controller: Controller) -> dict[str, proxy.Upstream]:
    """Host → the process serving it, from what the target runs right now."""
    return {
        proxy.host_of(controller.url(serving.agent, serving.environment)): proxy.Upstream(
            serving.agent, serving.environment, serving.version, serving.port
        )
        for serving in controller.target.serving()
    }


async def serve(
    config: ControllerConfig,
    host: str,
    port: int,
    on_ready: OnReady | None = None,
    api: ApiSettings | None = None,
) -> None:
    controller, router = build(config, api)
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
    loop_task = asyncio.create_task(controller.run(), name="shipyard-controller")
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
