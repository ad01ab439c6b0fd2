"""Recording agent traffic for replay: a tee on the router's request and response streams.

For agents whose serving version opts in (`spec.observability.record.enabled`), each
sampled request through the router is kept with its response: method, path and query,
headers with secrets redacted (`Authorization`, `Cookie`, `Set-Cookie` always, plus the
manifest's `redactHeaders`), at most `maxBodyBytes` of each body, the status, the latency
and the trace id. Health checks are never recorded.

Bodies stream through untouched: the tee copies at most the cap and counts the rest, so a
huge or endless body costs bounded memory and is marked truncated. Writing happens on a
thread of its own, fed by a bounded queue; the request path only enqueues, and when the
writer falls behind, records are dropped (and counted), never the request delayed.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from controller.api import tracing
from controller.specs import model
from controller.store.recordings import Recorded, Recordings, Retention

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

REDACTED = "[REDACTED]"
QUEUE_SIZE = 1000
_BATCH = 500
_BATCH_WINDOW_SECONDS = 0.25
_SETTINGS_CACHED = 4096

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Policy:
    """What to record of one version: its settings and the health path it must skip."""

    settings: model.RecordSettings
    health_path: str = "/healthz"


NOT_RECORDED = Policy(model.RecordSettings())

PolicyOf = Callable[[str, str, str], Policy | None]
"""(agent, environment, version) → its recording policy (a version's never changes: the
settings are part of what its hash covers), or None while it is not known yet."""


def policy_of_manifest(manifest: dict[str, Any]) -> Policy:
    """The policy a version's manifest (as stored with its revision) declares."""
    spec = manifest.get("spec") or {}
    health = (spec.get("healthCheck") or {}).get("path", "/healthz")
    return Policy(model.record_settings(spec), str(health))


class _Tee:
    """At most `cap` bytes of a stream, and how long it really was."""

    __slots__ = ("cap", "chunks", "kept", "total")

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.chunks: list[bytes] = []
        self.kept = 0
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.cap - self.kept
        if room > 0 and chunk:
            piece = chunk[:room]
            self.chunks.append(piece)
            self.kept += len(piece)

    def body(self) -> bytes:
        return b"".join(self.chunks)


class Recorder:
    def __init__(self, recordings: Recordings, policy_of: PolicyOf) -> None:
        self.recordings = recordings
        self._policy_of = policy_of
        self._policies: dict[tuple[str, str, str], Policy] = {}
        self._queue: queue.Queue[Recorded | None] = queue.Queue(QUEUE_SIZE)
        self._retention: dict[tuple[str, str], Retention] = {}
        self.dropped = 0
        self._writer = threading.Thread(target=self._write, name="shipyard-recorder", daemon=True)
        self._writer.start()

    def policy(self, agent: str, environment: str, version: str) -> Policy:
        key = (agent, environment, version)
        policy = self._policies.get(key)
        if policy is None:
            found = self._policy_of(agent, environment, version)
            if found is None:
                return NOT_RECORDED
            if len(self._policies) >= _SETTINGS_CACHED:
                self._policies.clear()
            policy = self._policies[key] = found
        return policy

    async def recorded(
        self,
        upstream: tracing.Destination,
        scope: Scope,
        receive: Receive,
        send: Send,
        proxy: Callable[[Scope, Receive, Send], Awaitable[None]],
    ) -> None:
        """Run `proxy`, keeping a copy of the exchange if the version records."""
        policy = self.policy(upstream.agent, upstream.environment, upstream.version)
        settings = policy.settings
        if (
            not settings.enabled
            or scope["path"] == policy.health_path
            or (settings.sample_rate < 1.0 and random.random() >= settings.sample_rate)  # noqa: S311
        ):
            await proxy(scope, receive, send)
            return
        request = _Tee(settings.max_body_bytes)
        response = _Tee(settings.max_body_bytes)
        answer: dict[str, Any] = {"status": 0, "headers": []}

        async def receiving() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                request.add(message.get("body", b""))
            return message

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                answer["status"] = int(message["status"])
                answer["headers"] = message.get("headers", [])
            else:
                response.add(message.get("body", b""))
            await send(message)

        started = time.perf_counter()
        complete = False
        try:
            await proxy(scope, receiving, sending)
            complete = True
        finally:
            self._enqueue(
                Recorded(
                    time=time.time() - (time.perf_counter() - started),
                    agent=upstream.agent,
                    environment=upstream.environment,
                    version=upstream.version,
                    trace_id=str(scope.get(tracing.TRACE_ID_KEY, "")),
                    method=str(scope["method"]),
                    path=str(scope["path"]),
                    query=bytes(scope.get("query_string", b"")).decode("latin-1"),
                    request_headers=_redacted(scope["headers"], settings.redacted),
                    request_body=request.body(),
                    request_bytes=request.total,
                    status=answer["status"],
                    response_headers=_redacted(answer["headers"], settings.redacted),
                    response_body=response.body(),
                    response_bytes=response.total,
                    latency=time.perf_counter() - started,
                    complete=complete,
                ),
                settings,
            )

    def flush(self) -> None:
        """Wait until everything enqueued so far is written."""
        self._queue.join()

    def close(self) -> None:
        """Write what is queued, then stop the writer (once)."""
        if self._writer.is_alive():
            self._queue.put(None)
            self._writer.join(timeout=30)
            self.recordings.close()

    def _enqueue(self, record: Recorded, settings: model.RecordSettings) -> None:
        self._retention[(record.agent, record.environment)] = Retention(
            settings.max_requests, settings.max_age_seconds
        )
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1
            if self.dropped in (1, 10, 100) or self.dropped % 1000 == 0:
                _log.warning("recorder falling behind: %d recorded requests dropped", self.dropped)

    def _write(self) -> None:
        stop = False
        while not stop:
            # One wake-up and one transaction per batch: block for the first record, let
            # more arrive for a moment, then take what is there. Waking for every record
            # would take the interpreter lock from the event loop once per request.
            first = self._queue.get()
            taken = 1
            batch: list[Recorded] = []
            if first is None:
                stop = True
            else:
                batch.append(first)
                time.sleep(_BATCH_WINDOW_SECONDS)
            while not stop and len(batch) < _BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                taken += 1
                if item is None:
                    stop = True
                else:
                    batch.append(item)
            try:
                retention = {
                    (r.agent, r.environment): self._retention[(r.agent, r.environment)]
                    for r in batch
                }
                self.recordings.add(batch, retention)
            except Exception:
                # Never the bodies: they may hold personal data.
                _log.exception("could not store %d recorded requests", len(batch))
            finally:
                for _ in range(taken):
                    self._queue.task_done()


def _redacted(headers: Any, redacted: frozenset[str]) -> tuple[tuple[str, str], ...]:
    kept = []
    for raw_name, raw_value in headers:
        name = raw_name.decode("latin-1").lower()
        value = REDACTED if name in redacted else raw_value.decode("latin-1")
        kept.append((name, value))
    return tuple(kept)
