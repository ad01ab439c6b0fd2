"""Watches: the event stream a real API server sends for `?watch=true` (or `=1`).

Rules reproduced: without a resourceVersion (or with "0") the stream starts with a
synthetic ADDED per current object, then follows changes; with one, it starts strictly
after it; one older than the kept history answers with an ERROR event carrying a 410
Expired Status (HTTP 200, as a real server does once the watch is open). Label and field
selectors filter, and an object that stops matching arrives as DELETED (its previous
state at the new resourceVersion), one that starts matching as ADDED. `timeoutSeconds`
ends the stream cleanly; `allowWatchBookmarks=true` adds periodic BOOKMARK events;
`sendInitialEvents=true` ends the initial ADDED events with the
`k8s.io/initial-events-end` bookmark. Dropping watches ends streams gracefully (a clean
end of the chunked body) or abruptly (connection reset), as tests choose.
"""

from __future__ import annotations

import json
import queue
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tests.fake_apiserver import errors
from tests.fake_apiserver.operations import Api, Target
from tests.fake_apiserver.selectors import parse_fields, parse_labels, predicate
from tests.fake_apiserver.store import Event, Watcher

Json = dict[str, Any]
DEFAULT_TIMEOUT = 1800.0


@dataclass(frozen=True)
class Settings:
    bookmark_interval: float = 60.0


class Session:
    """An opened watch; constructing it raises 400s, a too-old RV becomes an ERROR event."""

    def __init__(
        self, api: Api, target: Target, query: Mapping[str, str], settings: Settings
    ) -> None:
        rt = target.rt
        self.api = api
        self.target = target
        self.settings = settings
        self.matches = predicate(
            parse_labels(query.get("labelSelector")),
            parse_fields(query.get("fieldSelector"), rt.kind),
        )
        raw_rv = query.get("resourceVersion") or ""
        self.initial_events = query.get("sendInitialEvents", "").lower() == "true"
        try:
            since = None if raw_rv in ("", "0") or self.initial_events else int(raw_rv)
        except ValueError:
            raise errors.bad_request(f"invalid resource version: {raw_rv}") from None
        try:
            self.timeout = float(query.get("timeoutSeconds") or DEFAULT_TIMEOUT)
        except ValueError:
            raise errors.bad_request("timeoutSeconds must be a number") from None
        self.bookmarks = query.get("allowWatchBookmarks", "").lower() in ("true", "1")
        self.error: errors.ApiError | None = None
        self.initial: list[Json] = []
        self.watcher: Watcher | None = None
        namespace = target.namespace if rt.namespaced and target.namespace else None
        try:
            self.initial, self.watcher = api.store.watch(rt.key, namespace, since)
        except errors.ApiError as exc:
            self.error = exc

    def close(self) -> None:
        if self.watcher is not None:
            self.api.store.unwatch(self.watcher)

    def _line(self, kind: str, obj: Json, transform: Callable[[Json], Json]) -> bytes:
        return (
            json.dumps({"type": kind, "object": transform(obj)}, separators=(",", ":")) + "\n"
        ).encode()

    def _bookmark(self, annotations: Json | None = None) -> bytes:
        rt = self.target.rt
        meta: Json = {"resourceVersion": str(self.api.store.resource_version)}
        if annotations:
            meta["annotations"] = annotations
        obj = {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": meta}
        return (
            json.dumps({"type": "BOOKMARK", "object": obj}, separators=(",", ":")) + "\n"
        ).encode()

    def translate(self, event: Event) -> tuple[str, Json] | None:
        """The event as this watcher sees it through its selectors, or None."""
        now_matches = self.matches(event.obj)
        if event.type == "ADDED":
            return ("ADDED", event.obj) if now_matches else None
        if event.type == "DELETED":
            return ("DELETED", event.obj) if now_matches else None
        before = self.matches(event.prev)
        if now_matches and before:
            return ("MODIFIED", event.obj)
        if now_matches:
            return ("ADDED", event.obj)
        if before and event.prev is not None:
            prev = {
                **event.prev,
                "metadata": {**event.prev["metadata"], "resourceVersion": str(event.rv)},
            }
            return ("DELETED", prev)
        return None

    def run(self, emit: Callable[[bytes], None], transform: Callable[[Json], Json]) -> str:
        """Stream until done; returns why: timeout | graceful | abrupt | expired."""
        rt = self.target.rt
        if self.error is not None:
            emit(
                (
                    json.dumps(
                        {"type": "ERROR", "object": self.error.status()}, separators=(",", ":")
                    )
                    + "\n"
                ).encode()
            )
            return "expired"
        assert self.watcher is not None
        for obj in self.initial:
            if self.matches(obj):
                emit(self._line("ADDED", self.api.present(rt, obj), transform))
        if self.initial_events:
            emit(self._bookmark({"k8s.io/initial-events-end": "true"}))
        start = time.monotonic()
        deadline = start + self.timeout
        next_bookmark = start + self.settings.bookmark_interval
        while True:
            current = time.monotonic()
            if current >= deadline:
                return "timeout"
            if self.bookmarks and current >= next_bookmark:
                emit(self._bookmark())
                next_bookmark = current + self.settings.bookmark_interval
            wait = min(deadline, next_bookmark if self.bookmarks else deadline) - current
            try:
                event = self.watcher.events.get(timeout=max(0.0, min(wait, 1.0)))
            except queue.Empty:
                continue
            if event is None:
                return self.watcher.drop or "graceful"
            seen = self.translate(event)
            if seen is not None:
                emit(self._line(seen[0], self.api.present(rt, seen[1]), transform))
