"""kube-controller-manager's garbage collector, for the deletes that wait for it.

A Background delete is finished by the API layer (the owner goes at once and its
dependents follow). Foreground and Orphan deletes leave the owner in place, marked with a
`deletionTimestamp` and the `foregroundDeletion` / `orphan` finalizer; this controller
then does what the real one does, asynchronously as there:

- Orphan: remove the owner's entry from every dependent's `ownerReferences`, then the
  `orphan` finalizer (the owner goes, the dependents stay).
- Foreground: delete every dependent (in the foreground itself when it has dependents
  of its own, so a Deployment waits for its ReplicaSets' Pods), and remove the
  `foregroundDeletion` finalizer only once no dependent whose reference to the owner has
  `blockOwnerDeletion: true` is left. A blocking dependent held by a finalizer of its own
  keeps the owner, visibly, until that finalizer is removed.
"""

from __future__ import annotations

import threading
from typing import Any

from tests.fake_apiserver.controllers import Loop
from tests.fake_apiserver.operations import FOREGROUND_FINALIZER, ORPHAN_FINALIZER, Api
from tests.fake_apiserver.resources import Registry
from tests.fake_apiserver.store import Event

Json = dict[str, Any]
ObjectKey = tuple[str, str, str]  # (resource key, namespace, name)


def _owner_uids(obj: Json | None) -> set[str]:
    refs = ((obj or {}).get("metadata") or {}).get("ownerReferences") or []
    return {str(ref.get("uid")) for ref in refs if isinstance(ref, dict)}


class GarbageCollector:
    def __init__(self, api: Api, registry: Registry, loop: Loop) -> None:
        self.api = api
        self.registry = registry
        self.loop = loop
        self._lock = threading.Lock()
        self._waiting: dict[str, ObjectKey] = {}  # owner uid → the owner, in foreground

    def on_event(self, event: Event) -> None:
        meta = event.obj["metadata"]
        finalizers = meta.get("finalizers") or ()
        marked = FOREGROUND_FINALIZER in finalizers or ORPHAN_FINALIZER in finalizers
        if event.type != "DELETED" and meta.get("deletionTimestamp") and marked:
            self._soon((event.key, event.namespace, meta["name"]))
        if event.type == "DELETED":
            with self._lock:
                self._waiting.pop(str(meta.get("uid", "")), None)
        # A dependent that went, or dropped its reference, may have been the last one
        # its owner waited for.
        with self._lock:
            owners = [
                self._waiting[uid]
                for uid in _owner_uids(event.obj) | _owner_uids(event.prev)
                if uid in self._waiting
            ]
        for owner in owners:
            self._soon(owner)

    def _soon(self, key: ObjectKey) -> None:
        self.loop.call_later(0, lambda: self._process(key))

    def _process(self, key: ObjectKey) -> None:
        resource, namespace, name = key
        rt = self.registry.by_key(resource)
        store = self.api.store
        with store.lock:
            live = store.get(resource, namespace, name)
            if rt is None or live is None or not live["metadata"].get("deletionTimestamp"):
                return
            uid = str(live["metadata"].get("uid", ""))
            finalizers = live["metadata"].get("finalizers") or []
            if ORPHAN_FINALIZER in finalizers:
                self._orphan_dependents(uid)
                self._finish(key, ORPHAN_FINALIZER)
            elif FOREGROUND_FINALIZER in finalizers:
                if self._delete_dependents(uid):
                    with self._lock:
                        self._waiting[uid] = key
                    return
                with self._lock:
                    self._waiting.pop(uid, None)
                self._finish(key, FOREGROUND_FINALIZER)

    def _orphan_dependents(self, uid: str) -> None:
        for resource, namespace, name in self.api.store.dependents(uid):
            rt = self.registry.by_key(resource)
            if rt is None:
                continue

            def strip(obj: Json) -> None:
                refs = [
                    r for r in obj["metadata"].get("ownerReferences") or [] if r.get("uid") != uid
                ]
                if refs:
                    obj["metadata"]["ownerReferences"] = refs
                else:
                    obj["metadata"].pop("ownerReferences", None)

            self.api.update_as_controller(rt, namespace, name, strip)

    def _delete_dependents(self, uid: str) -> bool:
        """Start deleting every dependent of `uid`; True while a blocking one remains."""
        store = self.api.store
        blocked = False
        for resource, namespace, name in store.dependents(uid):
            rt = self.registry.by_key(resource)
            dependent = store.get(resource, namespace, name)
            if rt is None or dependent is None:
                continue
            if not dependent["metadata"].get("deletionTimestamp"):
                has_own = bool(store.dependents(str(dependent["metadata"].get("uid", ""))))
                policy = "Foreground" if has_own else "Background"
                self.api.delete_as_controller(rt, namespace, name, policy)
            remaining = store.get(resource, namespace, name)
            refs = (remaining or {}).get("metadata", {}).get("ownerReferences") or []
            if any(r.get("uid") == uid and r.get("blockOwnerDeletion") for r in refs):
                blocked = True
        return blocked

    def _finish(self, key: ObjectKey, finalizer: str) -> None:
        resource, namespace, name = key
        rt = self.registry.by_key(resource)
        assert rt is not None

        def drop(obj: Json) -> None:
            kept = [f for f in obj["metadata"].get("finalizers") or [] if f != finalizer]
            if kept:
                obj["metadata"]["finalizers"] = kept
            else:
                obj["metadata"].pop("finalizers", None)

        self.api.update_as_controller(rt, namespace, name, drop)
