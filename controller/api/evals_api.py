"""`/api/v1/environments/{env}/agents/{agent}/evals`: the golden cases' results.

The results of the version last evaluated in that environment; read-only, so a read
token is enough.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request

from controller.api import auth
from controller.errors import NotFound
from controller.reconciler.controller import Controller


def create_router(controller: Controller, tokens: auth.Tokens) -> APIRouter:
    def reader(request: Request) -> None:
        auth.require(tokens, "read", request)

    router = APIRouter(prefix="/api/v1")

    @router.get(
        "/environments/{environment}/agents/{agent}/evals",
        tags=["evals"],
        dependencies=[Depends(reader)],
    )
    async def agent_evals(environment: str, agent: str) -> dict[str, Any]:
        """Case by case: passed or not, latency, and the reason of a failure."""
        try:
            controller.status_of(environment, agent)
        except NotFound as error:
            raise HTTPException(404, str(error)) from error
        found = controller.evaluation.case_results(environment, agent)
        if found is None:
            return {"agent": agent, "environment": environment, "version": None, "cases": []}
        version, results = found
        return {
            "agent": agent,
            "environment": environment,
            "version": version,
            "cases": [
                {
                    "suite": result.suite,
                    "case": result.case,
                    "passed": result.passed,
                    "latencyMs": round(result.latency_ms, 1),
                    "reason": result.reason,
                }
                for result in results
            ],
        }

    return router
