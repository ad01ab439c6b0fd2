"""`/api/v1/.../recordings` and `.../replay`: reading recorded traffic and replaying it.

Recorded bodies may hold personal data, so reading them needs a read token (when the API
has tokens) and replaying, which sends traffic, a write token. Replaying into production
needs `allowProduction`: recorded requests might have side effects there.
"""

from __future__ import annotations

import base64
import time
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field

from controller.api import auth, replay
from controller.errors import NotFound
from controller.reconciler.controller import Controller
from controller.store.recordings import Recorded, Recordings
from preview import naming


class ReplayRequest(BaseModel):
    from_: str = Field(alias="from", description="Environment whose recorded requests to send.")
    last: int | None = Field(default=None, ge=1, le=1000, description="Only the newest N.")
    since: float | None = Field(default=None, ge=0, description="Only from the last N seconds.")
    timeoutSeconds: float = Field(default=30.0, gt=0, le=600, description="Per request.")
    allowProduction: bool = Field(default=False, description="Required to replay into production.")


def create_router(controller: Controller, recordings: Recordings, tokens: auth.Tokens) -> APIRouter:
    def reader(request: Request) -> None:
        auth.require(tokens, "read", request)

    def writer(request: Request) -> None:
        auth.require(tokens, "write", request)

    router = APIRouter(prefix="/api/v1")

    @router.get(
        "/environments/{environment}/agents/{agent}/recordings",
        tags=["recordings"],
        dependencies=[Depends(reader)],
    )
    async def list_recordings(
        environment: str,
        agent: str,
        last: int | None = Query(default=None, ge=1, le=1000),
        since: float | None = Query(default=None, ge=0, description="Seconds back."),
    ) -> dict[str, Any]:
        """Recorded requests and responses, oldest first, bodies in base64 (redacted
        headers read `[REDACTED]`)."""
        _known(controller, environment, agent)
        cutoff = time.time() - since if since is not None else None
        records = recordings.list(agent, environment, since=cutoff, last=last)
        return {"items": [_recorded(record) for record in records]}

    @router.post(
        "/environments/{environment}/agents/{agent}/replay",
        tags=["recordings"],
        dependencies=[Depends(writer)],
    )
    async def replay_into(environment: str, agent: str, body: ReplayRequest) -> dict[str, Any]:
        """Send recorded requests of `from` to the version serving in this environment and
        compare the answers; `{"items": [...], "summary": {...}}`."""
        _known(controller, body.from_, agent)
        _known(controller, environment, agent)
        if environment == naming.PRODUCTION and not body.allowProduction:
            raise HTTPException(
                409,
                "replaying into production sends recorded requests to the production agent, "
                "side effects included; pass --allow-production (allowProduction) to do it",
            )
        process = controller.target.process(environment, agent)
        if process is None or not process.port:
            raise HTTPException(
                409, f"{agent} has no running version in {environment}: nothing to replay against"
            )
        cutoff = time.time() - body.since if body.since is not None else None
        records = recordings.list(agent, body.from_, since=cutoff, last=body.last)
        target = replay.Target(environment, process.spec.version, process.port)
        host = _host(controller.url(agent, environment))
        return await replay.replay(records, target, timeout=body.timeoutSeconds, host=host)

    return router


def _known(controller: Controller, environment: str, agent: str) -> None:
    try:
        controller.status_of(environment, agent)
    except NotFound as error:
        raise HTTPException(404, str(error)) from error


def _host(url: str) -> str:
    return url.split("://", 1)[-1].split("/", 1)[0]


def _recorded(record: Recorded) -> dict[str, Any]:
    return {
        "id": record.id,
        "time": record.time,
        "agent": record.agent,
        "environment": record.environment,
        "version": record.version,
        "traceId": record.trace_id,
        "method": record.method,
        "path": record.path,
        "query": record.query,
        "requestHeaders": [list(pair) for pair in record.request_headers],
        "requestBodyBase64": base64.b64encode(record.request_body).decode(),
        "requestBytes": record.request_bytes,
        "requestTruncated": record.request_truncated,
        "status": record.status,
        "responseHeaders": [list(pair) for pair in record.response_headers],
        "responseBodyBase64": base64.b64encode(record.response_body).decode(),
        "responseBytes": record.response_bytes,
        "responseTruncated": record.response_truncated,
        "latencySeconds": record.latency,
        "complete": record.complete,
    }
