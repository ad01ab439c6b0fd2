"""The fake's etcd: objects, one global resourceVersion counter, event history, watchers.

Every write takes the next resourceVersion (a single monotonic counter across all
resources, as etcd's revision is) and appends an event to a bounded per-resource
history (kube-apiserver's watch cache); a watch replays the history after the
resourceVersion it was given and then follows live events, and a watch from before
the oldest kept event is answered 410 Expired. An index of ownerReferences lets the
garbage collector find dependents without scanning. One
re-entrant lock guards it all; the request layer holds it across read-modify-write so
resourceVersion preconditions are atomic. Stored objects are never mutated in place:
a write stores a new dict, so a reader may serialise what it got without copying.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.fake_apiserver import errors

Json = dict[str, Any]


@dataclass(frozen=True)
class Event:
    rv: int
    type: str  # ADDED | MODIFIED | DELETED
    key: str
    namespace: str
    obj: Json
    prev: Json | None


class Watcher:
    """One open watch's queue of events; closed by timeout, client, drop or shutdown."""

    def __init__(self, key: str, namespace: str | None) -> None:
        self.key = key
        self.namespace = namespace
        self.events: queue.SimpleQueue[Event | None] = queue.SimpleQueue()
        self.drop: str = ""  # "", "graceful" (clean end of stream) or "abrupt" (reset)

    def wants(self, event: Event) -> bool:
        return event.key == self.key and self.namespace in (None, event.namespace)

    def close(self, drop: str) -> None:
        self.drop = drop
        self.events.put(None)


class Store:
    def __init__(self, history_size: int = 1000) -> None:
        self.lock = threading.RLock()
        self._objects: dict[str, dict[tuple[str, str], Json]] = {}
        self._rv = 0
        # Per resource, like kube-apiserver's watch cache: a burst of writes to one kind
        # does not expire watches on another.
        self._history: dict[str, deque[Event]] = {}
        self._history_size = history_size
        self._compacted: dict[str, int] = {}
        self._owned: dict[str, set[tuple[str, str, str]]] = {}  # owner uid → dependents
        self._watchers: set[Watcher] = set()
        self._subscribers: list[Callable[[Event], None]] = []

    # -- reads ---------------------------------------------------------------------------

    @property
    def resource_version(self) -> int:
        with self.lock:
            return self._rv

    def get(self, key: str, namespace: str, name: str) -> Json | None:
        with self.lock:
            return self._objects.get(key, {}).get((namespace, name))

    def items(self, key: str, namespace: str | None = None) -> list[Json]:
        """Objects of a resource, ordered by namespace then name."""
        with self.lock:
            bucket = self._objects.get(key, {})
            keys = sorted(k for k in bucket if namespace is None or k[0] == namespace)
            return [bucket[k] for k in keys]

    def keys(self) -> list[str]:
        with self.lock:
            return [k for k, bucket in self._objects.items() if bucket]

    def dependents(self, uid: str) -> list[tuple[str, str, str]]:
        """(key, namespace, name) of objects with an ownerReference to `uid`."""
        with self.lock:
            return sorted(self._owned.get(uid, ()))

    def _index_owners(
        self, key: str, ident: tuple[str, str], old: Json | None, new: Json | None
    ) -> None:
        def uids(obj: Json | None) -> set[str]:
            refs = (obj or {}).get("metadata", {}).get("ownerReferences") or []
            return {str(r.get("uid")) for r in refs if isinstance(r, dict) and r.get("uid")}

        entry = (key, *ident)
        for uid in uids(old) - uids(new):
            self._owned.get(uid, set()).discard(entry)
        for uid in uids(new):
            self._owned.setdefault(uid, set()).add(entry)

    # -- writes --------------------------------------------------------------------------

    def put(self, key: str, obj: Json) -> Json:
        """Store `obj` (the store owns it from now on) with the next resourceVersion."""
        with self.lock:
            meta = obj["metadata"]
            ident = (meta.get("namespace", ""), meta["name"])
            bucket = self._objects.setdefault(key, {})
            prev = bucket.get(ident)
            self._rv += 1
            meta["resourceVersion"] = str(self._rv)
            bucket[ident] = obj
            self._index_owners(key, ident, prev, obj)
            self._emit(Event(self._rv, "MODIFIED" if prev else "ADDED", key, ident[0], obj, prev))
            return obj

    def delete(self, key: str, namespace: str, name: str) -> Json | None:
        with self.lock:
            obj = self._objects.get(key, {}).pop((namespace, name), None)
            if obj is None:
                return None
            self._index_owners(key, (namespace, name), obj, None)
            self._rv += 1
            gone = {**obj, "metadata": {**obj["metadata"], "resourceVersion": str(self._rv)}}
            self._emit(Event(self._rv, "DELETED", key, namespace, gone, obj))
            return gone

    def _emit(self, event: Event) -> None:
        history = self._history.setdefault(event.key, deque())
        history.append(event)
        while len(history) > self._history_size:
            self._compacted[event.key] = history.popleft().rv
        for watcher in self._watchers:
            if watcher.wants(event):
                watcher.events.put(event)
        for callback in self._subscribers:
            callback(event)

    # -- watching ------------------------------------------------------------------------

    def watch(
        self, key: str, namespace: str | None, since: int | None
    ) -> tuple[list[Json], Watcher]:
        """(current objects if `since` is None, watcher primed with events after `since`)."""
        with self.lock:
            watcher = Watcher(key, namespace)
            initial: list[Json] = []
            if since is None:
                initial = self.items(key, namespace)
            else:
                compacted = self._compacted.get(key, 0)
                if since < compacted:
                    raise errors.expired(f"too old resource version: {since} ({compacted})")
                for event in self._history.get(key, ()):
                    if event.rv > since and watcher.wants(event):
                        watcher.events.put(event)
            self._watchers.add(watcher)
            return initial, watcher

    def unwatch(self, watcher: Watcher) -> None:
        with self.lock:
            self._watchers.discard(watcher)

    def drop_watches(self, mode: str = "abrupt") -> int:
        with self.lock:
            watchers = list(self._watchers)
            self._watchers.clear()
        for watcher in watchers:
            watcher.close(mode)
        return len(watchers)

    def open_watches(self) -> int:
        with self.lock:
            return len(self._watchers)

    def subscribe(self, callback: Callable[[Event], None]) -> None:
        """Call `callback` (under the store lock: keep it short) after every write."""
        with self.lock:
            self._subscribers.append(callback)

    def set_history_size(self, size: int) -> None:
        with self.lock:
            self._history_size = size
            for key, history in self._history.items():
                while len(history) > size:
                    self._compacted[key] = history.popleft().rv
