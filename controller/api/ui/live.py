"""`/ui/events/stream`: server-sent events telling open pages the controller's state changed.

The stream compares a fingerprint of what the overview shows (each environment's commit,
each agent's versions, state and readiness, pins and problems, running canaries' steps)
once a second and sends `change` when it moves: a push that lands, a rollout that
finishes, an agent that crashes. The events page's stream (`?events=1`, with its
environment and agent filter) also moves with the newest event that filter lets through.
Pages fetch themselves again on `change`; the stream carries no data a page could leak.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from controller.reconciler.controller import Controller

CHECK_SECONDS = 1.0
HEARTBEAT_SECONDS = 15.0
RECONNECT_MILLISECONDS = 2000
MOVING_FIELDS = ("since",)  # age moves every second by itself; it is no change
EventFilter = tuple[str | None, str | None]  # environment, agent


def fingerprint(controller: Controller, events: EventFilter | None = None) -> str:
    """What the open page shows, as one string; with `events`, also the newest event the
    events page's filter (environment, agent; None for all) lets through."""
    shown: list[Any] = []
    for env in controller.environments():
        agents = [
            {key: value for key, value in agent.items() if key not in MOVING_FIELDS}
            for agent in env["agents"]
        ]
        shown.append([env["name"], env["commit"], env["conditions"], env["problems"], agents])
    # A canary's step, weight and phase move without the agents' own status moving.
    canaries = sorted(
        (slot, progress.step, progress.weight, progress.phase)
        for slot, progress in list(controller.canaries.progress.items())
    )
    newest = controller.store.newest_event_id(*events) if events is not None else None
    return json.dumps([shown, canaries, newest], sort_keys=True, default=str)


async def changes(
    controller: Controller,
    baseline: str,
    lifetime: float = 300.0,
    events: EventFilter | None = None,
) -> AsyncIterator[bytes]:
    """The stream's bytes: a reconnect delay, then `change` events and heartbeats, until
    the browser leaves (Starlette then cancels this generator) or `lifetime` passes (the
    browser reconnects by itself, so a stopping controller never waits on a forgotten
    tab). `baseline` is the fingerprint taken before the response started, so a change
    right after the browser sees the stream open is never missed."""
    yield f"retry: {RECONNECT_MILLISECONDS}\n: connected\n\n".encode()
    last = baseline
    quiet = 0.0
    waited = 0.0
    while waited < lifetime:
        await asyncio.sleep(CHECK_SECONDS)
        waited += CHECK_SECONDS
        now = fingerprint(controller, events)
        if now != last:
            last, quiet = now, 0.0
            yield b"event: change\ndata: {}\n\n"
            continue
        quiet += CHECK_SECONDS
        if quiet >= HEARTBEAT_SECONDS:
            quiet = 0.0
            yield b": heartbeat\n\n"
