"""`/api/v1/.../requests`: the recent requests the router traced, for `shipyard requests`.

Kept apart from `routes` because it reads the router's memory (`tracing.Recent`), not the
controller's store: it answers on the local target, where agent traffic passes through
this process.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from controller.api import auth, tracing
from controller.errors import NotFound
from controller.reconciler.controller import Controller


def create_router(
    controller: Controller, traced: tracing.Tracing, tokens: auth.Tokens
) -> APIRouter:
    def reader(request: Request) -> None:
        auth.require(tokens, "read", request)

    router = APIRouter(prefix="/api/v1", dependencies=[Depends(reader)])

    @router.get("/environments/{environment}/agents/{agent}/requests", tags=["agents"])
    async def agent_requests(
        environment: str,
        agent: str,
        version: str | None = Query(default=None, description="Only this version's requests."),
        limit: int = Query(default=100, ge=1, le=tracing.KEPT_PER_VERSION * 10),
    ) -> dict[str, Any]:
        """The newest requests the router passed to the agent, oldest first: method, path
        (never the query), status, latency, bytes and the trace id of each."""
        try:
            controller.status_of(environment, agent)
        except NotFound as error:
            raise HTTPException(404, str(error)) from error
        records = traced.recent.of(agent, environment, version, limit)
        return {
            "items": [record.as_dict() for record in records],
            "exporting": traced.exporting,
        }

    return router
