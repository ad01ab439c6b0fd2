"""A watched, cluster-wide cache of one kind of Shipyard's objects (an informer).

Rollout health read from lists shared between waiters raced with Shipyard's own writes:
a list taken just before an apply does not hold the new Deployment, and "missing" read
as "deleted". Here one list, then one watch from that list's resourceVersion, keeps a
cache that moves only forwards, and it remembers which objects (by uid) it saw deleted.
Callers therefore tell three states apart: seen (at some generation), not seen yet, and
gone, the last only for an object whose deletion the watch (or a relist that no longer
holds it) reported.

An optional transform (client-go's `SetTransform`) keeps only what readers use of each
object: without it, every Deployment and Pod of every preview sat in memory whole, with
its managedFields and pod template, tens of MiB per 1,000-agent preview.

An optional index (a function of an object, e.g. its namespace and labels) answers "the
objects with this key" without a scan: rollout waits ask for one agent version's pods
several times a second each, and scanning every pod for each of 1,000 waits made the
first sync quadratic.

It runs in one daemon thread. A dropped watch resumes from the last resourceVersion it
saw (bookmarks keep that fresh); a 410 or any API failure lists everything again after
a capped backoff, marking what vanished meanwhile as gone.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

from controller.targets.kubernetes import errors
from controller.targets.kubernetes.client import KubeClient, KubeObject, WatchStream

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace, name)
Index = Callable[[KubeObject], Hashable]
Transform = Callable[[KubeObject], KubeObject]
_GONE_REMEMBERED = 10_000


class Informer:
    def __init__(
        self,
        client: KubeClient,
        api_version: str,
        kind: str,
        label_selector: str,
        *,
        watch_timeout: int = 300,
        retry_cap: float = 10.0,
        on_change: Callable[[], None] | None = None,
        on_object: Callable[[KubeObject], None] | None = None,
        index: Index | None = None,
        transform: Transform | None = None,
    ) -> None:
        self.client = client
        self.api_version = api_version
        self.kind = kind
        self.label_selector = label_selector
        self.watch_timeout = watch_timeout
        self.retry_cap = retry_cap
        # Called from the watch thread after each change to the cache (the gateway
        # rebuilds its routes then); it must not block.
        self.on_change = on_change
        # Called from the watch thread with each object added, changed or deleted (as
        # kept: transformed), and with every object a relist brings; must not block.
        self.on_object = on_object
        self._objects: dict[Key, KubeObject] = {}
        self._index_of = index
        self._transform = transform
        self._indexed: dict[Hashable, dict[Key, KubeObject]] = {}
        self._gone: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._synced = threading.Event()
        self._stream: WatchStream | None = None
        self._thread = threading.Thread(target=self._run, name=f"watch {kind}", daemon=True)

    # Reading ----------------------------------------------------------------------------

    def start(self) -> Informer:
        self._thread.start()
        return self

    @property
    def synced(self) -> bool:
        """Whether the first list is in: before that, nothing is known, not even absence."""
        return self._synced.is_set()

    def get(self, namespace: str, name: str) -> KubeObject | None:
        with self._lock:
            return self._objects.get((namespace, name))

    def items(self, namespace: str | None = None) -> list[KubeObject]:
        with self._lock:
            return [obj for (ns, _), obj in self._objects.items() if namespace in (None, ns)]

    def indexed(self, value: Hashable) -> list[KubeObject]:
        """The objects whose index is `value` (needs an `index`)."""
        with self._lock:
            return list(self._indexed.get(value, {}).values())

    def gone(self, uid: str) -> bool:
        """Whether the object with this uid was seen deleted."""
        with self._lock:
            return uid in self._gone

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            stream = self._stream
        if stream is not None:
            stream.stop()

    # The loop ---------------------------------------------------------------------------

    def _run(self) -> None:
        version: str | None = None
        delay = 0.2
        while not self._stopping.is_set():
            try:
                if version is None:
                    items, version = self.client.list_versioned(
                        self.api_version, self.kind, None, self.label_selector
                    )
                    self._replace(items)
                    self._synced.set()
                    self._changed()
                    for item in items:
                        self._observed(item)
                version = self._follow(version)
                delay = 0.2
            except errors.Expired:
                version = None  # compacted: list again at once
            except errors.ApiError as error:
                log.warning("watching %s: %s; listing again in %.1fs", self.kind, error, delay)
                version = None
                self._stopping.wait(delay)
                delay = min(self.retry_cap, delay * 2)
            except Exception:
                log.exception("watching %s failed unexpectedly", self.kind)
                version = None
                self._stopping.wait(self.retry_cap)

    def _follow(self, version: str) -> str:
        """Apply the watch's events until it ends; the resourceVersion to resume from."""
        stream = self.client.watch(
            self.api_version,
            self.kind,
            None,
            self.label_selector,
            version,
            timeout_seconds=self.watch_timeout,
        )
        with self._lock:
            self._stream = stream
        if self._stopping.is_set():
            return version
        try:
            for kind, obj in stream.events():
                metadata = obj.get("metadata") or {}
                version = str(metadata.get("resourceVersion") or version)
                if kind in ("ADDED", "MODIFIED"):
                    self._observed(self._put(obj))
                    self._changed()
                elif kind == "DELETED":
                    self._delete(obj)
                    self._observed(obj)
                    self._changed()
                if self._stopping.is_set():
                    break
        finally:
            with self._lock:
                self._stream = None
        return version

    def _changed(self) -> None:
        if self.on_change is not None:
            try:
                self.on_change()
            except Exception:  # a listener's bug must not end the watch
                log.exception("a listener of the %s watch failed", self.kind)

    def _observed(self, obj: KubeObject) -> None:
        if self.on_object is not None:
            try:
                self.on_object(obj)
            except Exception:  # a listener's bug must not end the watch
                log.exception("a listener of the %s watch failed", self.kind)

    def _put(self, obj: KubeObject) -> KubeObject:
        metadata = obj.get("metadata") or {}
        key = (str(metadata.get("namespace", "")), str(metadata.get("name", "")))
        kept = self._kept({"apiVersion": self.api_version, "kind": self.kind, **obj})
        with self._lock:
            self._unindex(key)
            self._objects[key] = kept
            self._reindex(key)
        return kept

    def _delete(self, obj: KubeObject) -> None:
        metadata = obj.get("metadata") or {}
        key = (str(metadata.get("namespace", "")), str(metadata.get("name", "")))
        with self._lock:
            current = self._objects.get(key)
            # A late DELETED of an older incarnation must not drop a newer one.
            if current is not None and _uid(current) == str(metadata.get("uid", "")):
                self._unindex(key)
                del self._objects[key]
            self._forget(str(metadata.get("uid", "")))

    def _replace(self, items: list[KubeObject]) -> None:
        fresh: dict[Key, KubeObject] = {}
        for item in items:
            metadata = item.get("metadata") or {}
            key = (str(metadata.get("namespace", "")), str(metadata.get("name", "")))
            fresh[key] = self._kept(item)
        with self._lock:
            kept = {_uid(obj) for obj in fresh.values()}
            for obj in self._objects.values():
                if _uid(obj) not in kept:
                    self._forget(_uid(obj))
            self._objects = fresh
            self._indexed = {}
            for key in fresh:
                self._reindex(key)

    def _kept(self, obj: KubeObject) -> KubeObject:
        return obj if self._transform is None else self._transform(obj)

    def _unindex(self, key: Key) -> None:
        # Called with the lock held.
        current = self._objects.get(key)
        if self._index_of is None or current is None:
            return
        value = self._index_of(current)
        bucket = self._indexed.get(value)
        if bucket is not None:
            bucket.pop(key, None)
            if not bucket:
                del self._indexed[value]

    def _reindex(self, key: Key) -> None:
        # Called with the lock held.
        if self._index_of is not None:
            value = self._index_of(self._objects[key])
            self._indexed.setdefault(value, {})[key] = self._objects[key]

    def _forget(self, uid: str) -> None:
        # Called with the lock held.
        if not uid:
            return
        self._gone[uid] = None
        while len(self._gone) > _GONE_REMEMBERED:
            self._gone.popitem(last=False)


def interned(value: Any) -> Any:
    """`value` (decoded JSON) rebuilt with every string interned.

    Each decoded watch event brings its own copy of every label key, label value,
    condition type and reason; a cache of thousands of objects then holds thousands of
    equal strings. Interned, they hold one each.
    """
    if isinstance(value, str):
        return sys.intern(value)
    if isinstance(value, dict):
        return {sys.intern(key): interned(item) for key, item in value.items()}
    if isinstance(value, list):
        return [interned(item) for item in value]
    return value


def _uid(obj: KubeObject) -> str:
    return str((obj.get("metadata") or {}).get("uid", ""))
