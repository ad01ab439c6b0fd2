"""`logs -f` in the agent page: the running instance's new lines as server-sent events.

Each event is one line as JSON (`[stream or pod, text]`) with its timestamp as the event
id, so a browser that reconnects (the stream ends every few minutes, as the change
stream does) asks for what came after the last line it has, and loses none the local
target still buffers. The page appends lines as text nodes: nothing in a line is markup.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncGenerator, AsyncIterator

from controller.api import crash_output
from controller.errors import ShipyardError
from controller.reconciler import agent_logs
from controller.reconciler.agent_logs import LogOptions
from controller.reconciler.controller import Controller

LIFETIME_SECONDS = 300.0
RECONNECT_MILLISECONDS = 2000


def after(last_event_id: str | None, since: str | None) -> float | None:
    """The timestamp to follow from: the browser's last event id, else the page's."""
    for value in (last_event_id, since):
        try:
            return float(value) if value else None
        except ValueError:
            continue
    return None


async def stream(
    controller: Controller,
    environment: str,
    agent: str,
    cutoff: float | None,
    lifetime: float = LIFETIME_SECONDS,
) -> AsyncIterator[bytes]:
    """The stream's bytes: lines strictly after `cutoff` (from now when None)."""
    yield f"retry: {RECONNECT_MILLISECONDS}\n: following\n\n".encode()
    lines = _lines(controller, environment, agent, time.time() if cutoff is None else cutoff)
    ends = asyncio.get_running_loop().time() + lifetime
    try:
        while True:
            remaining = ends - asyncio.get_running_loop().time()
            if remaining <= 0:
                return
            try:
                moment, source, line = await asyncio.wait_for(anext(lines), remaining)
            except (StopAsyncIteration, TimeoutError):
                return
            data = json.dumps([source, line], ensure_ascii=False)
            yield f"id: {moment!r}\ndata: {data}\n\n".encode()
    finally:
        await lines.aclose()


async def _lines(
    controller: Controller, environment: str, agent: str, cutoff: float
) -> AsyncGenerator[tuple[float, str, str], None]:
    target = controller.target
    if crash_output.keeps_instances(target):
        process = target.process(environment, agent)
        if process is None:
            return
        async for entry in process.logs.follow(cutoff):
            if entry.timestamp > cutoff:
                yield entry.timestamp, entry.stream, entry.line
        return
    try:
        entries = await agent_logs.from_pods(
            controller, environment, agent, LogOptions(None, 0, False, True)
        )
    except ShipyardError:
        return
    if entries is None:
        return
    async for item in entries:
        stamp = item.get("timestamp")
        yield (
            float(stamp) if isinstance(stamp, int | float) else time.time(),
            str(item.get("source", "")),
            str(item.get("line", "")),
        )
