"""The cluster's background actors the code under test relies on, made controllable.

- **Deployments** (kube-controller-manager's deployment controller): on every template
  change a ReplicaSet `<name>-<pod-template-hash>` owned by the Deployment, revision
  annotations (`deployment.kubernetes.io/revision`, copied change-cause), so `kubectl
  rollout history` and `rollout undo` work; and a status that moves as a real rollout
  does. The mode is global or per Deployment (`name` or `namespace/name`):
  `ready` (progressing at once, healthy after `delay` seconds), `slow` (the same with
  a long delay), `stuck` (progressing, then after `deadline` seconds — or
  spec.progressDeadlineSeconds — `Progressing=False, reason ProgressDeadlineExceeded`),
  `manual` (revisions and ReplicaSets only; tests write status themselves) and `off`.
  A paused Deployment gets `Progressing=Unknown, reason DeploymentPaused`.
- **Namespaces**: a new namespace gets its `default` ServiceAccount and the
  `kube-root-ca.crt` ConfigMap; a deleted one stays Terminating for
  `termination_delay` seconds, then everything in it is deleted and it disappears.

All writes go through the same operations as client requests, as manager
`kube-controller-manager`, so they bump resourceVersions and reach watches.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

from tests.fake_apiserver import operations
from tests.fake_apiserver.events import Recorder
from tests.fake_apiserver.operations import Api
from tests.fake_apiserver.resources import Registry, ResourceType
from tests.fake_apiserver.store import Event

Json = dict[str, Any]
Mode = Literal["ready", "slow", "stuck", "manual", "off"]
MODES: tuple[Mode, ...] = ("ready", "slow", "stuck", "manual", "off")

REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
_NOT_COPIED = {
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    REVISION_HISTORY,
    DESIRED,
    MAX_REPLICAS,
    "deprecated.deployment.rollback.to",
}
_HASH_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Behaviour:
    mode: Mode = "ready"
    delay: float = 0.05  # ready / slow: seconds from progressing to healthy
    deadline: float | None = None  # stuck: seconds to ProgressDeadlineExceeded (None: spec's)


class Loop:
    """One thread running callbacks, soon or at a time; callbacks must not block long."""

    def __init__(self) -> None:
        self._cv = threading.Condition()
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._stopped = False
        self._thread = threading.Thread(
            target=self._run, name="fake-apiserver-controllers", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._cv:
            self._stopped = True
            self._cv.notify()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def call_later(self, delay: float, callback: Callable[[], None]) -> None:
        with self._cv:
            heapq.heappush(self._heap, (time.monotonic() + delay, next(self._seq), callback))
            self._cv.notify()

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._stopped:
                    if self._heap and self._heap[0][0] <= time.monotonic():
                        break
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cv.wait(timeout)
                if self._stopped:
                    return
                _, _, callback = heapq.heappop(self._heap)
            try:
                callback()
            except Exception:
                log.exception("fake apiserver controller callback failed")


# Stored objects are never changed in place, so a stored template hashes the same every
# time it is reconciled; keyed by identity, holding the template so its id stays its own.
_hashes: dict[int, tuple[Any, str]] = {}
_hashes_lock = threading.Lock()


def template_hash(template: Any) -> str:
    cached = _hashes.get(id(template))
    if cached is not None and cached[0] is template:
        return cached[1]
    result = _template_hash(template)
    if isinstance(template, dict):
        with _hashes_lock:
            if len(_hashes) > 10_000:
                _hashes.clear()
            _hashes[id(template)] = (template, result)
    return result


def _template_hash(template: Any) -> str:
    digest = hashlib.sha256(
        json.dumps(template, sort_keys=True, separators=(",", ":")).encode()
    ).digest()
    number = int.from_bytes(digest[:8], "big")
    chars = []
    for _ in range(10):
        number, remainder = divmod(number, len(_HASH_ALPHABET))
        chars.append(_HASH_ALPHABET[remainder])
    return "".join(chars)


def _condition(
    kind: str, status: str, reason: str, message: str, stamp: str, previous: list[Json]
) -> Json:
    prior = next((c for c in previous if c.get("type") == kind), None)
    transition = (
        prior["lastTransitionTime"]
        if prior and prior.get("status") == status and prior.get("lastTransitionTime")
        else stamp
    )
    return {
        "type": kind,
        "status": status,
        "lastUpdateTime": stamp,
        "lastTransitionTime": transition,
        "reason": reason,
        "message": message,
    }


def _counts(**counts: int) -> Json:
    """Replica counts as Go serialises them: zero values are omitted."""
    return {k: v for k, v in counts.items() if v}


class DeploymentController:
    def __init__(self, api: Api, registry: Registry, loop: Loop, default: Behaviour) -> None:
        self.api = api
        self.registry = registry
        self.loop = loop
        self._lock = threading.Lock()
        self._default = default
        self._overrides: dict[str, Behaviour] = {}
        self._timers: dict[tuple[str, str], tuple[int, str, str]] = {}  # → (gen, action, token)
        self._ready_hash: dict[tuple[str, str], str] = {}
        self._tokens = itertools.count()
        self._queued: set[tuple[str, str]] = set()
        # (namespace, ReplicaSet) → whether its pods crash: such a template never
        # becomes available (set by the pod controller).
        self.crashing: Callable[[str, str], bool] = lambda namespace, replicaset: False
        self.events: Recorder | None = None  # set by the server: where events are recorded
        # (namespace, ReplicaSet) → whether all its pods are ready; set by a test-only
        # kubelet (kubelet.py), which runs pods for real: available only once they answer.
        self.pods_ready: Callable[[str, str], bool] | None = None

    @property
    def rt(self) -> ResourceType:
        return self._rt

    @property
    def _rt(self) -> ResourceType:
        rt = self.registry.find("apps", "v1", "deployments")
        assert rt is not None
        return rt

    @property
    def _rs_rt(self) -> ResourceType:
        rt = self.registry.find("apps", "v1", "replicasets")
        assert rt is not None
        return rt

    # -- configuration -------------------------------------------------------------------

    def set_mode(
        self,
        mode: Mode,
        name: str | None = None,
        *,
        delay: float | None = None,
        deadline: float | None = None,
    ) -> None:
        """Set the behaviour for `name` (`namespace/name` or a bare name) or, without a
        name, the default; Deployments it concerns are re-examined at once."""
        if mode not in MODES:
            raise ValueError(f"unknown deployment mode {mode!r}; use one of {MODES}")
        with self._lock:
            base = self._overrides.get(name, self._default) if name else self._default
            behaviour = replace(base, mode=mode)
            if delay is not None:
                behaviour = replace(behaviour, delay=delay)
            elif mode == "slow" and base.mode != "slow":
                behaviour = replace(behaviour, delay=max(base.delay, 5.0))
            if deadline is not None:
                behaviour = replace(behaviour, deadline=deadline)
            if name:
                self._overrides[name] = behaviour
            else:
                self._default = behaviour
        for obj in self.api.store.items(self._rt.key):
            meta = obj["metadata"]
            if name in (None, meta["name"], f"{meta['namespace']}/{meta['name']}"):
                self._enqueue(meta["namespace"], meta["name"])

    def behaviour(self, namespace: str, name: str) -> Behaviour:
        with self._lock:
            return self._overrides.get(
                f"{namespace}/{name}", self._overrides.get(name, self._default)
            )

    # -- events --------------------------------------------------------------------------

    def on_event(self, event: Event) -> None:
        if event.key == self._rt.key:
            self._enqueue(event.namespace, event.obj["metadata"]["name"])

    def enqueue(self, namespace: str, name: str) -> None:
        """Reconcile this Deployment soon (once, however often asked meanwhile)."""
        self._enqueue(namespace, name)

    def _enqueue(self, namespace: str, name: str) -> None:
        # A work queue: a Deployment already waiting is not queued twice.
        key = (namespace, name)
        with self._lock:
            if key in self._queued:
                return
            self._queued.add(key)

        def run() -> None:
            with self._lock:
                self._queued.discard(key)
            self.reconcile(namespace, name)

        self.loop.call_later(0, run)

    # -- the controller ------------------------------------------------------------------

    def reconcile(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        d = self.api.store.get(self._rt.key, namespace, name)
        behaviour = self.behaviour(namespace, name)
        if d is None or behaviour.mode == "off" or d["metadata"].get("deletionTimestamp"):
            with self._lock:
                self._timers.pop(key, None)
                if d is None:
                    self._ready_hash.pop(key, None)
            return
        spec = d.get("spec") or {}
        generation = int(d["metadata"].get("generation", 1))
        if spec.get("paused"):
            self._write_status(d, self._paused_status(d))
            return
        pod_hash = template_hash(spec.get("template"))
        revision = self._sync_replicasets(d, pod_hash)
        if behaviour.mode in ("ready", "slow") and self.crashing(namespace, f"{name}-{pod_hash}"):
            behaviour = replace(behaviour, mode="stuck")
        if (d["metadata"].get("annotations") or {}).get(REVISION) != revision:
            d = (
                self.api.update_as_controller(
                    self._rt,
                    namespace,
                    name,
                    lambda o: (
                        o["metadata"].setdefault("annotations", {}).__setitem__(REVISION, revision)
                    ),
                )
                or d
            )
        if behaviour.mode == "manual":
            return
        status = d.get("status") or {}
        progressing = _find(status, "Progressing")
        observed = status.get("observedGeneration") == generation and progressing is not None
        reason = (progressing or {}).get("reason") if observed else None
        with self._lock:
            ready = self._ready_hash.get(key) == pod_hash
        if reason == "NewReplicaSetAvailable" and ready:
            return
        if reason == "ProgressDeadlineExceeded" and behaviour.mode == "stuck":
            return
        if int(spec.get("replicas", 1)) == 0:
            self._become_ready(namespace, name, generation, pod_hash)
            return
        # A rollout under way stays as it is; a stuck one recovers without a detour.
        if reason not in ("ReplicaSetUpdated", "ProgressDeadlineExceeded"):
            self._write_status(d, self._progressing_status(d, pod_hash))
        if behaviour.mode == "stuck":
            wait = (
                behaviour.deadline
                if behaviour.deadline is not None
                else float(spec.get("progressDeadlineSeconds", 600))
            )
            self._schedule(namespace, name, generation, "stuck", wait, pod_hash)
        else:
            self._schedule(namespace, name, generation, "ready", behaviour.delay, pod_hash)

    def _schedule(
        self, namespace: str, name: str, generation: int, action: str, delay: float, pod_hash: str
    ) -> None:
        key = (namespace, name)
        with self._lock:
            current = self._timers.get(key)
            if current is not None and current[:2] == (generation, action):
                return
            token = str(next(self._tokens))
            self._timers[key] = (generation, action, token)

        def fire() -> None:
            with self._lock:
                if self._timers.get(key) != (generation, action, token):
                    return
                del self._timers[key]
            d = self.api.store.get(self._rt.key, namespace, name)
            if d is None or int(d["metadata"].get("generation", 1)) != generation:
                return
            if action == "ready":
                replicaset = f"{name}-{pod_hash}"
                if self.pods_ready is not None and not self.pods_ready(namespace, replicaset):
                    self._schedule(namespace, name, generation, "ready", 0.05, pod_hash)
                    return
                self._become_ready(namespace, name, generation, pod_hash)
            else:
                self._write_status(d, self._stuck_status(d, pod_hash))

        self.loop.call_later(delay, fire)

    def _become_ready(self, namespace: str, name: str, generation: int, pod_hash: str) -> None:
        d = self.api.store.get(self._rt.key, namespace, name)
        if d is None:
            return
        desired = int((d.get("spec") or {}).get("replicas", 1))
        with self._lock:
            self._ready_hash[(namespace, name)] = pod_hash
        for rs in self._owned(d):
            is_new = rs["metadata"]["name"] == f"{name}-{pod_hash}"
            count = desired if is_new else 0

            def scale(o: Json, count: int = count) -> None:
                o["spec"]["replicas"] = count

            def settle(o: Json, count: int = count) -> None:
                o["status"] = {
                    **_counts(
                        replicas=count,
                        fullyLabeledReplicas=count,
                        readyReplicas=count,
                        availableReplicas=count,
                    ),
                    "observedGeneration": o["metadata"].get("generation", 1),
                }
                if not count:
                    o["status"]["replicas"] = 0

            self.api.update_as_controller(self._rs_rt, namespace, rs["metadata"]["name"], scale)
            self.api.update_as_controller(
                self._rs_rt, namespace, rs["metadata"]["name"], settle, subresource="status"
            )
        self._prune_history(d)
        self._write_status(d, self._ready_status(d, pod_hash))

    # -- ReplicaSets and revisions -------------------------------------------------------

    def _owned(self, d: Json) -> list[Json]:
        uid = str(d["metadata"].get("uid", ""))
        store = self.api.store
        candidates = [
            store.get(key, namespace, name)
            for key, namespace, name in store.dependents(uid)
            if key == self._rs_rt.key
        ]
        return [
            rs
            for rs in candidates
            if rs is not None
            and any(
                r.get("uid") == uid and r.get("controller")
                for r in rs["metadata"].get("ownerReferences") or []
            )
        ]

    def _sync_replicasets(self, d: Json, pod_hash: str) -> str:
        """Make sure the ReplicaSet of the current template exists and carries the newest
        revision; return that revision."""
        meta = d["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        owned = self._owned(d)
        revisions = [
            int((rs["metadata"].get("annotations") or {}).get(REVISION, "0") or 0) for rs in owned
        ]
        newest = max(revisions, default=0)
        rs_name = f"{name}-{pod_hash}"
        current = next((rs for rs in owned if rs["metadata"]["name"] == rs_name), None)
        copied = {k: v for k, v in (meta.get("annotations") or {}).items() if k not in _NOT_COPIED}
        spec = d.get("spec") or {}
        desired = int(spec.get("replicas", 1))
        if current is None:
            revision = str(newest + 1)
            template = json.loads(json.dumps(spec.get("template") or {}))
            template.setdefault("metadata", {}).setdefault("labels", {})["pod-template-hash"] = (
                pod_hash
            )
            selector = json.loads(json.dumps(spec.get("selector") or {}))
            selector.setdefault("matchLabels", {})["pod-template-hash"] = pod_hash
            rs = {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": {
                    "name": rs_name,
                    "namespace": namespace,
                    "labels": dict(template["metadata"]["labels"]),
                    "annotations": {
                        **copied,
                        DESIRED: str(desired),
                        MAX_REPLICAS: str(desired + 1),
                        REVISION: revision,
                    },
                    "ownerReferences": [
                        {
                            "apiVersion": "apps/v1",
                            "kind": "Deployment",
                            "name": name,
                            "uid": meta.get("uid"),
                            "controller": True,
                            "blockOwnerDeletion": True,
                        }
                    ],
                },
                "spec": {"replicas": desired, "selector": selector, "template": template},
            }
            created = self.api.create_as_controller(self._rs_rt, rs)
            if created is not None and self.events is not None:
                self.events.record(
                    d,
                    "Normal",
                    "ScalingReplicaSet",
                    f"Scaled up replica set {rs_name} from 0 to {desired}",
                    "deployment-controller",
                )
            return revision
        annotations = current["metadata"].get("annotations") or {}
        revision = annotations.get(REVISION, "0")
        wanted = dict(annotations)
        if int(revision or 0) < newest:
            history = [h for h in annotations.get(REVISION_HISTORY, "").split(",") if h]
            wanted[REVISION_HISTORY] = ",".join([*history, revision])
            revision = str(newest + 1)
            wanted[REVISION] = revision
        wanted.update(copied)
        wanted[DESIRED] = str(desired)
        if wanted != annotations:
            self.api.update_as_controller(
                self._rs_rt,
                namespace,
                rs_name,
                lambda o: o["metadata"].__setitem__("annotations", wanted),
            )
        return revision

    def _prune_history(self, d: Json) -> None:
        limit = int((d.get("spec") or {}).get("revisionHistoryLimit", 10))
        spec_hash = template_hash((d.get("spec") or {}).get("template"))
        old = [
            rs
            for rs in self._owned(d)
            if rs["metadata"]["name"] != f"{d['metadata']['name']}-{spec_hash}"
        ]
        old.sort(key=lambda rs: int((rs["metadata"].get("annotations") or {}).get(REVISION, "0")))
        for rs in old[: max(0, len(old) - limit)]:
            self.api.remove_as_controller(
                self._rs_rt, rs["metadata"]["namespace"], rs["metadata"]["name"]
            )

    # -- status --------------------------------------------------------------------------

    def _write_status(self, d: Json, status: Json) -> None:
        meta = d["metadata"]
        current = d.get("status") or {}
        if _without_times(current) == _without_times(status):
            return
        self.api.update_as_controller(
            self._rt,
            meta["namespace"],
            meta["name"],
            lambda o: o.__setitem__("status", status),
            subresource="status",
        )

    def _progressing_status(self, d: Json, pod_hash: str) -> Json:
        spec = d.get("spec") or {}
        previous = d.get("status") or {}
        conditions = previous.get("conditions") or []
        desired = int(spec.get("replicas", 1))
        with self._lock:
            ready_hash = self._ready_hash.get((d["metadata"]["namespace"], d["metadata"]["name"]))
        template_changed = ready_hash not in (None, pod_hash)
        available = min(int(previous.get("availableReplicas", 0)), desired)
        total = desired + available if template_changed and available else max(desired, available)
        stamp = operations.now()
        rs_name = f"{d['metadata']['name']}-{pod_hash}"
        if available > 0:
            avail = _condition(
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
                stamp,
                conditions,
            )
        else:
            avail = _condition(
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
                stamp,
                conditions,
            )
        return {
            "observedGeneration": d["metadata"].get("generation", 1),
            **_counts(
                replicas=total,
                updatedReplicas=desired,
                readyReplicas=available,
                availableReplicas=available,
                unavailableReplicas=total - available,
            ),
            "conditions": [
                avail,
                _condition(
                    "Progressing",
                    "True",
                    "ReplicaSetUpdated",
                    f'ReplicaSet "{rs_name}" is progressing.',
                    stamp,
                    conditions,
                ),
            ],
        }

    def _ready_status(self, d: Json, pod_hash: str) -> Json:
        desired = int((d.get("spec") or {}).get("replicas", 1))
        conditions = (d.get("status") or {}).get("conditions") or []
        stamp = operations.now()
        rs_name = f"{d['metadata']['name']}-{pod_hash}"
        return {
            "observedGeneration": d["metadata"].get("generation", 1),
            **_counts(
                replicas=desired,
                updatedReplicas=desired,
                readyReplicas=desired,
                availableReplicas=desired,
            ),
            "conditions": [
                _condition(
                    "Available",
                    "True",
                    "MinimumReplicasAvailable",
                    "Deployment has minimum availability.",
                    stamp,
                    conditions,
                ),
                _condition(
                    "Progressing",
                    "True",
                    "NewReplicaSetAvailable",
                    f'ReplicaSet "{rs_name}" has successfully progressed.',
                    stamp,
                    conditions,
                ),
            ],
        }

    def _stuck_status(self, d: Json, pod_hash: str) -> Json:
        status: Json = json.loads(json.dumps(d.get("status") or {}))
        conditions = status.get("conditions") or []
        rs_name = f"{d['metadata']['name']}-{pod_hash}"
        stuck = _condition(
            "Progressing",
            "False",
            "ProgressDeadlineExceeded",
            f'ReplicaSet "{rs_name}" has timed out progressing.',
            operations.now(),
            conditions,
        )
        status["conditions"] = [c for c in conditions if c.get("type") != "Progressing"] + [stuck]
        return status

    def _paused_status(self, d: Json) -> Json:
        status: Json = json.loads(json.dumps(d.get("status") or {}))
        conditions = status.get("conditions") or []
        paused = _condition(
            "Progressing",
            "Unknown",
            "DeploymentPaused",
            "Deployment is paused",
            operations.now(),
            conditions,
        )
        status["conditions"] = [c for c in conditions if c.get("type") != "Progressing"] + [paused]
        status["observedGeneration"] = d["metadata"].get("generation", 1)
        return status


def _find(status: Json, kind: str) -> Json | None:
    return next((c for c in status.get("conditions") or [] if c.get("type") == kind), None)


def _without_times(status: Json) -> Json:
    conditions = [
        {k: v for k, v in c.items() if k not in ("lastUpdateTime", "lastTransitionTime")}
        for c in status.get("conditions") or []
    ]
    return {**status, "conditions": conditions}


class NamespaceController:
    def __init__(
        self, api: Api, registry: Registry, loop: Loop, *, termination_delay: float, populate: bool
    ) -> None:
        self.api = api
        self.registry = registry
        self.loop = loop
        self.termination_delay = termination_delay
        self.populate = populate
        self._finalizing: set[str] = set()
        self._lock = threading.Lock()

    def _rt(self, group: str, plural: str) -> ResourceType:
        rt = self.registry.find(group, "v1", plural)
        assert rt is not None
        return rt

    def on_event(self, event: Event) -> None:
        if event.key != "/namespaces":
            return
        name = event.obj["metadata"]["name"]
        if event.type == "ADDED" and self.populate:
            self.loop.call_later(0, lambda: self._populate(name))
        if event.type == "MODIFIED" and event.obj["metadata"].get("deletionTimestamp"):
            with self._lock:
                if name in self._finalizing:
                    return
                self._finalizing.add(name)
            self.loop.call_later(self.termination_delay, lambda: self._finalize(name))

    def _populate(self, namespace: str) -> None:
        self.api.create_as_controller(
            self._rt("", "serviceaccounts"),
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": "default", "namespace": namespace},
            },
        )
        self.api.create_as_controller(
            self._rt("", "configmaps"),
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": "kube-root-ca.crt",
                    "namespace": namespace,
                    "annotations": {
                        "kubernetes.io/description": (
                            "Contains a CA bundle that can be used to verify the "
                            "kube-apiserver when using internal endpoints such as the "
                            "internal service IP or kubernetes.default.svc. No other usage "
                            "is guaranteed across distributions of Kubernetes clusters."
                        )
                    },
                },
                "data": {
                    "ca.crt": "-----BEGIN CERTIFICATE-----\nfake\n-----END CERTIFICATE-----\n"
                },
            },
        )

    def _finalize(self, namespace: str) -> None:
        with self._lock:
            self._finalizing.discard(namespace)
        with self.api.store.lock:
            for rt in self.registry.all():
                if not rt.namespaced:
                    continue
                for obj in self.api.store.items(rt.key, namespace):
                    self.api.remove_as_controller(rt, namespace, obj["metadata"]["name"])
            ns = self.api.store.get("/namespaces", "", namespace)
            if ns is not None and ns["metadata"].get("deletionTimestamp"):
                self.api.remove_as_controller(self._rt("", "namespaces"), "", namespace)
