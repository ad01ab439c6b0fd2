"""Shipyard's HTTP API: health, readiness, `/api/v1`, the dashboard and the webhook receivers.

Built with FastAPI so the OpenAPI document comes for free (`/openapi.json`, `/docs`);
the router in `proxy` sits in front of it on the same port and takes agent traffic
away before it gets here.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from controller.api import (
    api_bodies,
    auth,
    evals_api,
    hooks_sink,
    leadership,
    recordings_api,
    requests_api,
    routes,
    tracing,
    webhooks,
)
from controller.api.ui import router as dashboard
from controller.api.ui.rates import RateHistory
from controller.metrics import exposition
from controller.reconciler.controller import Controller
from controller.store.recordings import Recordings


def create_app(
    controller: Controller,
    tokens: auth.Tokens | None = None,
    webhook_settings: webhooks.WebhookSettings | None = None,
    standby: leadership.Standby | None = None,
    *,
    traced: tracing.Tracing | None = None,
    recordings: Recordings | None = None,
    traffic: RateHistory | None = None,
) -> FastAPI:
    standby = standby or leadership.Standby()
    app = FastAPI(
        title="Shipyard",
        version="v1",
        description="Git-native deployments and previews for AI agents.",
    )
    app.add_middleware(leadership.WarningHeader, standby=standby)
    # Outside the routes: FastAPI would read a body before checking the token.
    app.add_middleware(api_bodies.ApiBodyGate, tokens=tokens or auth.Tokens())
    sink = hooks_sink.ControllerSink(controller)
    # Probes and scrapers may ask with HEAD (uptime checkers do): answer it, not 405.
    app.state.webhook_sink = sink

    @app.api_route("/healthz", methods=["GET", "HEAD"], tags=["health"])
    async def healthz() -> dict[str, str]:
        """The process is up and serving HTTP."""
        return {"status": "ok"}

    @app.api_route("/readyz", methods=["GET", "HEAD"], tags=["health"], response_model=None)
    async def readyz() -> JSONResponse | dict[str, str]:
        """Ready once this replica leads (if it elects) and its first sync has finished."""
        waiting = standby.message()
        if waiting is not None:
            return JSONResponse({"status": "standby", "reason": waiting}, status_code=503)
        if not controller.first_sync.is_set():
            return JSONResponse({"status": "syncing"}, status_code=503)
        return {"status": "ready"}

    @app.api_route("/metrics", methods=["GET", "HEAD"], tags=["health"], response_class=Response)
    async def metrics(request: Request) -> Response:
        """Prometheus exposition (docs/metrics.md); needs a read token when tokens are set."""
        auth.require(tokens or auth.Tokens(), "read", request)
        body, content_type = exposition.render(controller.metrics, request.headers.get("accept"))
        return Response(body, media_type=content_type)

    app.include_router(routes.create_router(controller, tokens or auth.Tokens(), standby))
    app.include_router(evals_api.create_router(controller, tokens or auth.Tokens()))
    if traced is not None:
        app.include_router(requests_api.create_router(controller, traced, tokens or auth.Tokens()))
    if recordings is not None:
        app.include_router(
            recordings_api.create_router(controller, recordings, tokens or auth.Tokens())
        )
    app.include_router(
        dashboard.create_router(controller, tokens or auth.Tokens(), traced, traffic)
    )
    webhooks.install(app, webhook_settings or webhooks.WebhookSettings(None), sink)
    return app
