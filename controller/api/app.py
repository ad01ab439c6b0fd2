"""Shipyard's HTTP API: health, readiness and the read side of environments.

Built with FastAPI so the OpenAPI document comes for free; the router in `proxy` sits in
front of it on the same port and takes agent traffic away before it gets here.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.responses import JSONResponse

from controller.reconciler.controller import Controller


def create_app(controller: Controller) -> FastAPI:
    app = FastAPI(
        title="Shipyard",
        version="v1",
        description="Git-native deployments and previews for AI agents.",
    )

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """The process is up and serving HTTP."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], response_model=None)
    async def readyz() -> JSONResponse | dict[str, str]:
        """Ready once the first sync of every environment has finished."""
        if not controller.first_sync.is_set():
            return JSONResponse({"status": "syncing"}, status_code=503)
        return {"status": "ready"}

    @app.get("/api/v1/environments", tags=["environments"])
    async def list_environments() -> dict[str, Any]:
        """Every environment with its branch, commit, conditions and agents."""
        return {"items": controller.environments(), "source": _source(controller)}

    @app.get("/api/v1/environments/{name}", tags=["environments"])
    async def get_environment(name: str) -> dict[str, Any]:
        """One environment; 404 names the ones that exist."""
        status = controller.statuses.get(name)
        if status is None:
            known = ", ".join(sorted(controller.statuses)) or "none"
            raise HTTPException(
                status_code=404, detail=f'environment "{name}" not found (known: {known})'
            )
        return status.as_dict()

    return app


def _source(controller: Controller) -> dict[str, Any]:
    return {
        "repo": controller.config.repo,
        "defaultBranch": controller.default_branch,
        "lastFetch": controller.last_fetch,
        "error": controller.source_error,
    }
