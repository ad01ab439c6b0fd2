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
import hashlib
import json
import time
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


class Fingerprints:
    """The fingerprint per events filter, computed at most once per `fresh` seconds: every
    open stream and every live page's render share it, so a thousand agents cost one
    pass a second however many tabs are open. A value up to `fresh` old only ever causes
    one refresh too many, never one too few (the next check sees the change)."""

    KEPT_FILTERS = 64  # filters come from query strings: a bound, not a cache of all

    def __init__(self, controller: Controller, fresh: float = CHECK_SECONDS / 2) -> None:
        self.controller = controller
        self.fresh = fresh
        self._kept: dict[EventFilter | None, tuple[float, str]] = {}

    def current(self, events: EventFilter | None = None) -> str:
        now = time.monotonic()
        kept = self._kept.get(events)
        if kept is not None and now - kept[0] < self.fresh:
            return kept[1]
        if len(self._kept) >= self.KEPT_FILTERS:
            self._kept.clear()
        value = fingerprint(self.controller, events)
        self._kept[events] = (now, value)
        return value


def digest(fingerprint: str) -> str:
    """A short name for a fingerprint, for a page to say in its stream's URL."""
    return hashlib.sha256(fingerprint.encode()).hexdigest()[:20]


async def changes(
    fingerprints: Fingerprints,
    baseline: str,
    events: EventFilter | None = None,
    seen: str | None = None,
    lifetime: float = 300.0,
) -> AsyncIterator[bytes]:
    """The stream's bytes: a reconnect delay, then `change` events and heartbeats, until
    the browser leaves (Starlette then cancels this generator) or `lifetime` passes (the
    browser reconnects by itself, so a stopping controller never waits on a forgotten
    tab). `baseline` is the fingerprint taken before the response started, so a change
    right after the browser sees the stream open is never missed; `seen` is the digest
    of what the page showed when rendered, so neither is one between the render and the
    stream's start."""
    yield f"retry: {RECONNECT_MILLISECONDS}\n: connected\n\n".encode()
    if seen is not None and seen != digest(baseline):
        yield b"event: change\ndata: {}\n\n"  # it moved between the page and the stream
    last = baseline
    quiet = 0.0
    waited = 0.0
    while waited < lifetime:
        await asyncio.sleep(CHECK_SECONDS)
        waited += CHECK_SECONDS
        now = fingerprints.current(events)
        if now != last:
            last, quiet = now, 0.0
            yield b"event: change\ndata: {}\n\n"
            continue
        quiet += CHECK_SECONDS
        if quiet >= HEARTBEAT_SECONDS:
            quiet = 0.0
            yield b": heartbeat\n\n"
