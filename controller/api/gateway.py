"""`shipyard gateway`: Shipyard's router in a cluster, in front of the agents' pods.

Ingresses point agent hosts at the gateway's Service; the gateway routes each request
to a ready pod of the version that should answer (the stable one, or the canary for its
weight, `gateway_routes`), stamps `x-shipyard-version`, and counts it in the same
per-version series the local router exports (`shipyard_agent_requests_total`,
`shipyard_agent_request_duration_seconds`), served at `/metrics`. It holds no state of
its own: any number of replicas give the same answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

import uvicorn

from controller.api import connections, gateway_routes, proxy, shutdown
from controller.metrics import exposition
from controller.metrics.collector import Metrics
from controller.targets.kubernetes.client import KubeClient
from preview import naming

log = logging.getLogger("shipyard.gateway")
DEFAULT_HEADER_TIMEOUT = 30.0


def host_maker(url_template: str) -> gateway_routes.HostOf:
    """(agent, environment) → the host of its URL, as the controller renders Ingresses."""

    def host_of(agent: str, environment: str) -> str:
        # A host has no port; any port fills a `{port}` placeholder just as well.
        return proxy.host_of(naming.preview_url(url_template, agent, environment, port=80))

    return host_of


class _Endpoints:
    """What the gateway answers itself: health, readiness (the first lists are in), metrics."""

    def __init__(self, routes: gateway_routes.ClusterRoutes, metrics: Metrics) -> None:
        self.routes = routes
        self.metrics = metrics

    async def __call__(self, scope: proxy.Scope, receive: proxy.Receive, send: proxy.Send) -> None:
        path = scope.get("path", "")
        if path == "/healthz":
            await _reply(send, 200, {"status": "ok"})
        elif path == "/readyz":
            ready = self.routes.synced
            await _reply(send, 200 if ready else 503, {"status": "ok" if ready else "syncing"})
        elif path == "/metrics":
            accept = next(
                (v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"accept"), None
            )
            body, content_type = exposition.render(self.metrics, accept)
            await _send(send, 200, body, content_type)
        else:
            await _reply(send, 404, {"error": f"no agent is served at this host; path {path}"})


def build(
    client: KubeClient, url_template: str
) -> tuple[proxy.Router, gateway_routes.ClusterRoutes]:
    """The gateway's ASGI app and the watched table it routes from (not started yet)."""
    routes = gateway_routes.ClusterRoutes(client, host_maker(url_template))
    metrics = Metrics(exports_state=False)
    metrics.watch(routes.state)
    router = proxy.Router(
        _Endpoints(routes, metrics),
        upstreams=lambda: routes.hosts,
        agent_hosts=proxy.host_pattern(url_template),
        metrics=metrics,
    )
    return router, routes


async def serve(
    client: KubeClient,
    url_template: str,
    host: str,
    port: int,
    header_timeout: float = DEFAULT_HEADER_TIMEOUT,
) -> None:
    router, routes = build(client, url_template)
    routes.start()
    server = shutdown.Server(
        uvicorn.Config(
            router,
            host=host,
            port=port,
            lifespan="off",
            http=connections.protocol_with_header_timeout(header_timeout, router),
            log_level="warning",
            server_header=False,
            date_header=False,
            timeout_graceful_shutdown=int(shutdown.GRACEFUL_HTTP_SECONDS),
        )
    )
    signals = shutdown.Signals(server, on_request=lambda: None)
    log.info("gateway listening on http://%s:%d/", host, port)
    with signals.installed():
        try:
            await server.serve()
        finally:
            routes.stop()
            await router.aclose()


def run(client: KubeClient, url_template: str, host: str, port: int, header_timeout: float) -> None:
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(client, url_template, host, port, header_timeout))


async def _reply(send: proxy.Send, status: int, body: dict[str, Any]) -> None:
    await _send(send, status, json.dumps(body).encode() + b"\n", "application/json")


async def _send(send: proxy.Send, status: int, body: bytes, content_type: str) -> None:
    headers = [(b"content-type", content_type.encode()), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
