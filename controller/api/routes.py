"""`/api/v1`: what the CLI and dashboards read, and the few writes a person needs.

Reads: environments, agents (their version in each environment), revisions, rollouts,
events, logs. Writes: rollout undo / pause / resume / promote / abort and an immediate
sync. Errors are JSON `{"detail": "..."}` with 404 for unknown names, 409 for impossible
requests and 503 when the target's API failed mid-request.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from controller.api import auth, crash_output, leadership
from controller.errors import Conflict, NotFound, ShipyardError, Transient
from controller.reconciler import agent_logs, canary
from controller.reconciler.agent_logs import LogOptions
from controller.reconciler.controller import Controller
from controller.source import errors as source_errors


class UndoRequest(BaseModel):
    # The store's integers are 64-bit: a larger number is no revision, and must not reach it.
    toRevision: int | None = Field(
        default=None, ge=1, le=2**63 - 1, description="Revision to return to."
    )
    reason: str = Field(default="", max_length=1000)


class PromoteRequest(BaseModel):
    full: bool = Field(default=False, description="Skip the remaining steps: promote now.")


class PauseRequest(BaseModel):
    reason: str = Field(default="", max_length=1000)


def create_router(
    controller: Controller, tokens: auth.Tokens, standby: leadership.Standby | None = None
) -> APIRouter:
    def reader(request: Request) -> None:
        auth.require(tokens, "read", request)

    def writer(request: Request) -> None:
        auth.require(tokens, "write", request)

    router = APIRouter()
    router.include_router(
        _reads(
            controller,
            APIRouter(prefix="/api/v1", dependencies=[Depends(reader)]),
            standby or leadership.Standby(),
        )
    )
    router.include_router(
        _writes(controller, APIRouter(prefix="/api/v1", dependencies=[Depends(writer)]))
    )
    return router


def _reads(controller: Controller, read: APIRouter, standby: leadership.Standby) -> APIRouter:

    @read.get("/environments", tags=["environments"])
    async def list_environments() -> dict[str, Any]:
        """Every environment with its branch, commit, conditions and agents; `warnings`
        says why the list may be empty (this replica waits for leadership)."""
        waiting = standby.message()
        return {
            "items": controller.environments(),
            "source": _source(controller),
            "warnings": [waiting] if waiting is not None else [],
        }

    @read.get("/environments/{name}", tags=["environments"])
    async def get_environment(name: str) -> dict[str, Any]:
        """One environment; 404 names the ones that exist."""
        status = controller.statuses.get(name)
        if status is None:
            known = ", ".join(sorted(controller.statuses)) or "none"
            raise HTTPException(404, f'environment "{name}" not found (known: {known})')
        return status.as_dict()

    @read.get("/agents", tags=["agents"])
    async def list_agents(environment: str | None = None) -> dict[str, Any]:
        """Every agent in every environment (or one), with the version it serves."""
        items = []
        for env in controller.environments():
            if environment is not None and env["name"] != environment:
                continue
            for agent in env["agents"]:
                canary_progress = controller.canaries.as_dict(env["name"], agent["name"])
                items.append(
                    {
                        **agent,
                        "environment": env["name"],
                        "branch": env["branch"],
                        "canary": canary_progress,
                    }
                )
        if environment is not None and environment not in controller.statuses:
            _unknown_environment(controller, environment)
        return {"items": items}

    @read.get("/environments/{environment}/agents/{agent}", tags=["agents"])
    async def describe_agent(environment: str, agent: str) -> dict[str, Any]:
        """One agent in one environment: status, the spec that serves, pin, history, events.

        `environmentStatus` carries the environment's commit and conditions, so a reader
        sees when a newer commit could not be deployed (the environment is Stalled).
        """
        status = _agent(controller, environment, agent)
        revisions = controller.store.revisions(agent, environment)
        pins = [p for p in controller.store.pins(environment) if p.agent == agent]
        serving = (
            controller.store.revision_serving(agent, environment, status.version)
            if status.version is not None
            else None
        )
        shown = serving if serving is not None else (revisions[-1] if revisions else None)
        manifest = json.loads(shown.manifest_json) if shown is not None else None
        environment_status = controller.statuses[environment].as_dict()
        return {
            "environment": environment,
            "environmentStatus": {
                key: environment_status[key] for key in ("branch", "commit", "conditions")
            },
            "agent": status.as_dict(),
            "manifest": manifest,
            "manifestRevision": shown.number if shown is not None else None,
            "pin": dataclasses.asdict(pins[0]) if pins else None,
            "revisions": [_revision(r) for r in revisions],
            "rollouts": [_rollout(r) for r in controller.store.rollouts(agent, environment)],
            "events": [dataclasses.asdict(e) for e in controller.store.events(environment, agent)],
            "lastState": crash_output.last_state(controller.target, environment, agent),
            "canary": controller.canaries.as_dict(environment, agent),
        }

    @read.get("/revisions", tags=["history"])
    async def list_revisions(agent: str, environment: str) -> dict[str, Any]:
        """Revisions of one agent in one environment, oldest first."""
        _agent(controller, environment, agent)
        return {"items": [_revision(r) for r in controller.store.revisions(agent, environment)]}

    @read.get("/rollouts", tags=["history"])
    async def list_rollouts(
        agent: str | None = None, environment: str | None = None
    ) -> dict[str, Any]:
        """Rollouts, oldest first, optionally for one agent and/or environment."""
        return {"items": [_rollout(r) for r in controller.store.rollouts(agent, environment)]}

    @read.get("/events", tags=["history"])
    async def list_events(
        environment: str | None = None, agent: str | None = None
    ) -> dict[str, Any]:
        """Events, oldest first."""
        events = controller.store.events(environment, agent)
        return {"items": [dataclasses.asdict(e) for e in events]}

    @read.get("/environments/{environment}/agents/{agent}/logs", tags=["agents"])
    async def agent_logs(
        environment: str,
        agent: str,
        *,
        since: float | None = Query(default=None, ge=0, description="Seconds back."),
        follow: bool = False,
        tail: int | None = Query(default=None, ge=0, description="Last lines (per pod)."),
        previous: bool = Query(
            default=False, description="The most recently ended instance's last output."
        ),
        version: str | None = Query(default=None, description="With previous: of this version."),
    ) -> StreamingResponse:
        """The agent's captured output as JSON lines; `follow` streams new lines. On
        Kubernetes: every pod of its version, each entry with its `source` pod."""
        _agent(controller, environment, agent)
        if previous and crash_output.keeps_instances(controller.target):
            return _ended_instance_logs(
                controller, environment, agent, version=version, since=since, tail=tail
            )
        process = controller.target.process(environment, agent)
        if process is None:
            return await _pod_logs(
                controller, environment, agent, LogOptions(since, tail, previous, follow)
            )
        cutoff = time.time() - since if since is not None else None

        async def lines() -> AsyncIterator[bytes]:
            if follow:
                async for line in process.logs.follow(cutoff):
                    yield _json_line(line)
            else:
                backlog = list(process.logs.lines(cutoff))
                for line in backlog[-tail:] if tail is not None else backlog:
                    yield _json_line(line)

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    return read


def _writes(controller: Controller, write: APIRouter) -> APIRouter:
    @write.post("/environments/{environment}/agents/{agent}/undo", tags=["rollouts"])
    async def undo(
        environment: str, agent: str, body: UndoRequest, request: Request
    ) -> dict[str, Any]:
        """Roll back to a revision (default: the one before) and pin it there."""
        rollout = await _steer(
            lambda: controller.undo(
                environment, agent, body.toRevision, _actor(request), body.reason
            )
        )
        return {"rollout": _rollout(rollout)}

    @write.post("/environments/{environment}/agents/{agent}/pause", tags=["rollouts"])
    async def pause(
        environment: str, agent: str, body: PauseRequest, request: Request
    ) -> dict[str, Any]:
        """Hold the agent at what it serves, through new commits, until resumed; 409 if paused.

        While a canary runs, hold it at its current step (weight and analysis) instead."""
        if controller.canaries.running(environment, agent):
            actor = _actor(request) + (f": {body.reason}" if body.reason else "")
            await _steer(lambda: controller.steer_canary(environment, agent, canary.PAUSE, actor))
            return {
                "requested": canary.PAUSE,
                "canary": controller.canaries.as_dict(environment, agent),
            }
        pin = await _steer(
            lambda: controller.pause(environment, agent, _actor(request), body.reason)
        )
        return {"pin": dataclasses.asdict(pin)}

    @write.post("/environments/{environment}/agents/{agent}/resume", tags=["rollouts"])
    async def resume(environment: str, agent: str, request: Request) -> dict[str, Any]:
        """Lift a pause or undo pin; the branch's version comes back on the next sync.

        A canary held at its step by `pause` walks on from there."""
        if controller.canaries.held(environment, agent):
            await _steer(
                lambda: controller.steer_canary(environment, agent, canary.RESUME, _actor(request))
            )
            return {"resumed": True, "canary": controller.canaries.as_dict(environment, agent)}
        lifted = await _steer(lambda: controller.resume(environment, agent, _actor(request)))
        return {"resumed": lifted}

    @write.post("/environments/{environment}/agents/{agent}/promote", tags=["rollouts"])
    async def promote(
        environment: str, agent: str, body: PromoteRequest, request: Request
    ) -> dict[str, Any]:
        """Move a running canary past its current pause (or, with `full`, promote it now)."""
        intent = canary.PROMOTE_FULL if body.full else canary.PROMOTE
        await _steer(lambda: controller.steer_canary(environment, agent, intent, _actor(request)))
        return {"requested": intent, "canary": controller.canaries.as_dict(environment, agent)}

    @write.post("/environments/{environment}/agents/{agent}/abort", tags=["rollouts"])
    async def abort(environment: str, agent: str, request: Request) -> dict[str, Any]:
        """Stop a running canary: all traffic back to the stable version."""
        await _steer(
            lambda: controller.steer_canary(environment, agent, canary.ABORT, _actor(request))
        )
        return {
            "requested": canary.ABORT,
            "canary": controller.canaries.as_dict(environment, agent),
        }

    @write.post("/sync", tags=["sync"], status_code=202)
    async def sync() -> dict[str, str]:
        """Fetch and reconcile now instead of at the next poll."""
        controller.trigger()
        return {"status": "sync requested"}

    return write


async def _steer(call: Callable[[], Any]) -> Any:
    try:
        result = call()
        return await result if inspect.isawaitable(result) else result
    except NotFound as error:
        raise HTTPException(404, str(error)) from error
    except Conflict as error:
        raise HTTPException(409, str(error)) from error
    except Transient as error:
        raise HTTPException(503, f"{error}; try again") from error


def _actor(request: Request) -> str:
    actor = request.headers.get("x-shipyard-actor", "").strip()
    return actor[:100] if actor else "api"


def _agent(controller: Controller, environment: str, agent: str) -> Any:
    try:
        return controller.status_of(environment, agent)
    except NotFound as error:
        raise HTTPException(404, str(error)) from error


def _unknown_environment(controller: Controller, environment: str) -> None:
    known = ", ".join(sorted(controller.statuses)) or "none"
    raise HTTPException(404, f'environment "{environment}" not found (known: {known})')


def _revision(revision: Any) -> dict[str, Any]:
    fields = dataclasses.asdict(revision)
    fields["manifest"] = json.loads(fields.pop("manifest_json"))
    # The prompt file's text as this revision deployed it (null for an inline prompt).
    fields["prompt"] = fields.pop("prompt_text")
    return fields


def _rollout(rollout: Any) -> dict[str, Any]:
    fields = dataclasses.asdict(rollout)
    fields["result"] = str(rollout.result)
    return fields


def _ended_instance_logs(
    controller: Controller,
    environment: str,
    agent: str,
    *,
    version: str | None,
    since: float | None,
    tail: int | None,
) -> StreamingResponse:
    ended = crash_output.previous(controller.target, environment, agent, version)
    cutoff = time.time() - since if since is not None else None
    kept = [line for line in ended.output if cutoff is None or line.timestamp >= cutoff]
    kept = kept[-tail:] if tail is not None else kept
    return StreamingResponse(
        iter([_json_line(line) for line in kept]),
        media_type="application/x-ndjson",
        headers={"x-shipyard-instance": ended.message, "x-shipyard-version": ended.version},
    )


async def _pod_logs(
    controller: Controller, environment: str, agent: str, options: LogOptions
) -> StreamingResponse:
    try:
        entries = await agent_logs.from_pods(controller, environment, agent, options)
    except NotFound as error:
        raise HTTPException(404, str(error)) from error
    except ShipyardError as error:  # the kubelet refused (no previous container, …)
        raise HTTPException(400, str(error)) from error
    if entries is None:
        raise HTTPException(
            409,
            f"{agent} has no running process in {environment}"
            " (--previous shows the last ended instance's output)",
        )
    lines = (json.dumps(entry).encode() + b"\n" async for entry in entries)
    return StreamingResponse(lines, media_type="application/x-ndjson")


def _json_line(line: Any) -> bytes:
    return json.dumps(dataclasses.asdict(line)).encode() + b"\n"


def _source(controller: Controller) -> dict[str, Any]:
    return {
        "repo": source_errors.redact(controller.config.repo),
        "defaultBranch": controller.default_branch,
        "lastFetch": controller.last_fetch,
        "error": controller.source_error,
    }
