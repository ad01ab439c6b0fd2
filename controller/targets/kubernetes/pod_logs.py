"""An agent's pod logs, as `kubectl logs -l … --prefix --timestamps` would print them.

`shipyard logs` on the Kubernetes target reads every pod of the agent's version in its
environment through the official client: each line tagged with its source
(`pod/<name>/<container>`) and its time (the kubelet's RFC 3339 timestamp), one pod
after another, or, with `follow`, all pods at once, merged as lines arrive. One thread
per followed pod feeds an asyncio queue; closing the iterator stops them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from controller.targets.kubernetes import errors
from controller.targets.kubernetes.client import KubeClient, LogStream

KubeObject = dict[str, Any]
_END = object()


@dataclass(frozen=True)
class LogOptions:
    since: float | None = None  # seconds back
    tail: int | None = None  # lines per pod
    previous: bool = False  # the container before its last restart
    follow: bool = False


def entry(source: str, raw: str) -> dict[str, Any]:
    """One JSON log entry from a kubelet line with its timestamp prefix."""
    stamp, _, line = raw.partition(" ")
    return {"line": line, "stream": "stdout", "timestamp": _seconds(stamp), "source": source}


async def stream(
    client: KubeClient, pods: list[KubeObject], container: str, options: LogOptions
) -> AsyncIterator[dict[str, Any]]:
    """Open every pod's log now (so a refusal is raised here, before any line), then
    iterate over their entries."""
    streams: list[tuple[str, LogStream]] = []
    try:
        for pod in pods:
            log = await asyncio.to_thread(_open, client, pod, container, options)
            streams.append((f"pod/{pod['metadata']['name']}/{container}", log))
    except BaseException:
        for _, log in streams:
            log.stop()
        raise
    return _followed(streams) if options.follow else _in_turn(streams)


async def _in_turn(streams: list[tuple[str, LogStream]]) -> AsyncIterator[dict[str, Any]]:
    try:
        for source, log in streams:
            for raw in await asyncio.to_thread(_all_lines, log):
                yield entry(source, raw)
    finally:
        for _, log in streams:
            log.stop()


async def _followed(streams: list[tuple[str, LogStream]]) -> AsyncIterator[dict[str, Any]]:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[object] = asyncio.Queue()
    for source, log in streams:
        threading.Thread(
            target=_pump, args=(log, source, loop, queue), name=f"logs {source}", daemon=True
        ).start()
    try:
        running = len(streams)
        while running:
            item = await queue.get()
            if item is _END:
                running -= 1
                continue
            assert isinstance(item, dict)
            yield item
    finally:
        for _, log in streams:
            log.stop()


def _all_lines(log: LogStream) -> list[str]:
    return list(log.lines())


def _open(client: KubeClient, pod: KubeObject, container: str, options: LogOptions) -> LogStream:
    since = None if options.since is None else max(1, int(options.since + 0.999))
    try:
        return client.pod_log(
            pod["metadata"]["namespace"],
            pod["metadata"]["name"],
            container=container,
            previous=options.previous,
            tail_lines=options.tail,
            since_seconds=since,
            timestamps=True,
            follow=options.follow,
        )
    except errors.Invalid as error:
        # The kubelet's own words: no previous container, a container still waiting…
        raise errors.Invalid(f"pod {pod['metadata']['name']}: {error}", error.status) from error


def _pump(
    log: LogStream, source: str, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[object]
) -> None:
    try:
        for raw in log.lines():
            loop.call_soon_threadsafe(queue.put_nowait, entry(source, raw))
    finally:
        with contextlib.suppress(RuntimeError):  # the loop closed first
            loop.call_soon_threadsafe(queue.put_nowait, _END)


def _seconds(stamp: str) -> float | None:
    """RFC 3339 with nanoseconds (the kubelet's) as Unix seconds; None if it is not one."""
    if not stamp.endswith("Z"):
        return None
    whole, _, fraction = stamp[:-1].partition(".")
    try:
        moment = datetime.fromisoformat(whole + "+00:00")
    except ValueError:
        return None
    digits = (fraction or "0")[:9]
    return moment.timestamp() + (int(digits) / 10 ** len(digits) if digits.isdigit() else 0.0)
