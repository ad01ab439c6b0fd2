"""Pods: what the ReplicaSet controller, the scheduler and the kubelet would make of a template.

Each ReplicaSet gets `spec.replicas` Pods named `<replicaset>-<5 chars>`, owned by it,
carrying the template's labels, annotations and spec (plus `nodeName`), and a status as
a kubelet reports it: `Running` with ready containers, or, when a test sets a crash for
the Deployment, the state a real cluster shows for it:

- `CrashLoopBackOff`: Running, not ready, `waiting.reason=CrashLoopBackOff`, the last
  termination (`Error`, exit code) in `lastState`, `restartCount` as set;
- `OOMKilled`: the same, with `lastState.terminated.reason=OOMKilled`, exit code 137;
- `ImagePullBackOff` / `ErrImagePull` / `CreateContainerConfigError`: Pending,
  `waiting` with that reason and message, no restarts;
- `Unschedulable`: Pending, no node, `PodScheduled=False, reason Unschedulable`.

A crashing Deployment is also set `stuck`, so it never becomes available and reports
`ProgressDeadlineExceeded` at its own deadline, as a real one would.

`pods/log` serves the lines a test sets per Deployment (current and previous container),
with `tailLines`, `sinceSeconds`, `timestamps`, `previous`, `container` and `follow`.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tests.fake_apiserver import errors, events, operations
from tests.fake_apiserver.controllers import Loop
from tests.fake_apiserver.resources import Registry, ResourceType
from tests.fake_apiserver.store import Event

if TYPE_CHECKING:
    from tests.fake_apiserver.controllers import DeploymentController

Json = dict[str, Any]
NODE = "fake-node"
CRASHES = (
    "CrashLoopBackOff",
    "OOMKilled",
    "ImagePullBackOff",
    "ErrImagePull",
    "CreateContainerConfigError",
    "Unschedulable",
)
_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


@dataclass(frozen=True)
class Crash:
    reason: str
    message: str = ""
    exit_code: int = 1
    restarts: int = 3
    spared: frozenset[str] = frozenset()  # ReplicaSets that keep running (new_only)


@dataclass
class Logs:
    """One Deployment's container output: (unix time, line) pairs."""

    current: list[tuple[float, str]] = field(default_factory=list)
    previous: list[tuple[float, str]] = field(default_factory=list)


class PodController:
    def __init__(
        self, api: operations.Api, registry: Registry, loop: Loop, deployments: DeploymentController
    ) -> None:
        self.api = api
        self.registry = registry
        self.loop = loop
        self.deployments = deployments
        self._lock = threading.Condition()
        self._crashes: dict[str, Crash] = {}  # "ns/deployment" or "deployment" → crash
        self._logs: dict[str, Logs] = {}
        self._names = itertools.count()
        self._stopped = False
        self.events = events.Recorder(api, registry)
        # Set by a test-only kubelet (kubelet.py): it runs healthy pods and reports their
        # status itself, so this controller writes only the crash states tests set.
        self.kubelet: object | None = None

    def stop(self) -> None:
        """End every `follow` stream."""
        with self._lock:
            self._stopped = True
            self._lock.notify_all()

    @property
    def _rt(self) -> ResourceType:
        rt = self.registry.find("", "v1", "pods")
        assert rt is not None
        return rt

    @property
    def _rs_rt(self) -> ResourceType:
        rt = self.registry.find("apps", "v1", "replicasets")
        assert rt is not None
        return rt

    # -- what tests set ------------------------------------------------------------------

    def set_crash(
        self,
        name: str,
        reason: str | None,
        *,
        message: str = "",
        exit_code: int | None = None,
        restarts: int = 3,
        new_only: bool = False,
    ) -> None:
        """Make the pods of Deployment `name` (`ns/name` or a bare name) show `reason`
        (one of `CRASHES`), or run healthily again with None. `new_only`: only templates
        applied from now on crash (a bad version); what runs now keeps running. The
        Deployment does not become available while its current template crashes."""
        if reason is not None and reason not in CRASHES:
            raise ValueError(f"unknown crash reason {reason!r}; use one of {CRASHES}")
        owned = [
            rs
            for rs in self.api.store.items(self._rs_rt.key)
            if _deployment_of(rs) is not None and name in _names(rs)
        ]
        with self._lock:
            if reason is None:
                self._crashes.pop(name, None)
            else:
                code = exit_code if exit_code is not None else (137 if reason == "OOMKilled" else 1)
                spared = frozenset(
                    f"{rs['metadata']['namespace']}/{rs['metadata']['name']}" for rs in owned
                )
                self._crashes[name] = Crash(
                    reason, message, code, restarts, spared if new_only else frozenset()
                )
        for rs in owned:
            self.loop.call_later(0, self._restatus(rs))
        for deployment in self.api.store.items(self.deployments.rt.key):
            meta = deployment["metadata"]
            if name in (meta["name"], f"{meta['namespace']}/{meta['name']}"):
                self.deployments.enqueue(meta["namespace"], meta["name"])

    def crashing(self, namespace: str, replicaset: str) -> bool:
        """Whether the pods of this ReplicaSet crash (its Deployment then never becomes
        available)."""
        rs = self.api.store.get(self._rs_rt.key, namespace, replicaset)
        return rs is not None and self._crash_for(rs) is not None

    def _restatus(self, rs: Json) -> Callable[[], None]:
        return lambda: self._sync(rs, restatus=True)

    def set_logs(self, name: str, lines: list[str], *, previous: list[str] | None = None) -> None:
        """The output of Deployment `name`'s containers (now, and before the last restart)."""
        stamp = time.time()
        with self._lock:
            self._logs[name] = Logs(
                [(stamp, line) for line in lines], [(stamp, line) for line in previous or []]
            )
            self._lock.notify_all()

    def append_log(self, name: str, line: str) -> None:
        """One more line from Deployment `name`'s current containers (reaches `follow`)."""
        with self._lock:
            self._logs.setdefault(name, Logs()).current.append((time.time(), line))
            self._lock.notify_all()

    # -- the controllers -----------------------------------------------------------------

    def on_event(self, event: Event) -> None:
        if event.key == self._rs_rt.key and event.type != "DELETED":
            rs = event.obj
            self.loop.call_later(0, lambda: self._sync(rs))

    def _crash_for(self, rs: Json) -> Crash | None:
        key = f"{rs['metadata']['namespace']}/{rs['metadata']['name']}"
        with self._lock:
            for name in _names(rs):
                crash = self._crashes.get(name)
                if crash is not None and key not in crash.spared:
                    return crash
        return None

    def _sync(self, rs: Json, *, restatus: bool = False) -> None:
        meta = rs["metadata"]
        live = self.api.store.get(self._rs_rt.key, meta["namespace"], meta["name"])
        if live is None or live["metadata"].get("uid") != meta.get("uid"):
            return
        if live["metadata"].get("deletionTimestamp"):
            return  # as the ReplicaSet controller: one being deleted gets no new pods
        wanted = int((live.get("spec") or {}).get("replicas", 1))
        pods = self._owned(live)
        crash = self._crash_for(live)
        for pod in pods[wanted:]:
            self.api.remove_as_controller(self._rt, meta["namespace"], pod["metadata"]["name"])
        for pod in pods[:wanted]:
            if restatus:
                self._write_status(pod, crash)
        for _ in range(wanted - len(pods)):
            created = self._create(live, crash)
            if created is not None:
                self.events.record(
                    live,
                    "Normal",
                    "SuccessfulCreate",
                    f"Created pod: {created['metadata']['name']}",
                    "replicaset-controller",
                )
                self._write_status(created, crash)

    def _owned(self, rs: Json) -> list[Json]:
        uid = str(rs["metadata"].get("uid", ""))
        found = [
            self.api.store.get(key, namespace, name)
            for key, namespace, name in self.api.store.dependents(uid)
            if key == self._rt.key
        ]
        return sorted((p for p in found if p is not None), key=lambda p: p["metadata"]["name"])

    def _create(self, rs: Json, crash: Crash | None) -> Json | None:
        meta = rs["metadata"]
        template = (rs.get("spec") or {}).get("template") or {}
        template_meta = template.get("metadata") or {}
        spec = dict(template.get("spec") or {})
        if crash is None or crash.reason != "Unschedulable":
            spec["nodeName"] = NODE
        pod: Json = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{meta['name']}-{self._suffix()}",
                "namespace": meta["namespace"],
                "labels": dict(template_meta.get("labels") or {}),
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "ReplicaSet",
                        "name": meta["name"],
                        "uid": meta.get("uid"),
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": spec,
        }
        if template_meta.get("annotations"):
            pod["metadata"]["annotations"] = dict(template_meta["annotations"])
        return self.api.create_as_controller(self._rt, pod)

    def _suffix(self) -> str:
        number = next(self._names) * 7919 + 104729
        chars = []
        for _ in range(5):
            number, remainder = divmod(number, len(_SUFFIX_ALPHABET))
            chars.append(_SUFFIX_ALPHABET[remainder])
        return "".join(chars)

    def _write_status(self, pod: Json, crash: Crash | None) -> None:
        if crash is None and self.kubelet is not None:
            return
        status = pod_status(pod, crash)
        meta = pod["metadata"]
        if crash is not None:
            self._record_crash(pod, crash)
        self.api.update_as_controller(
            self._rt,
            meta["namespace"],
            meta["name"],
            lambda o: o.__setitem__("status", status),
            subresource="status",
        )

    def _record_crash(self, pod: Json, crash: Crash) -> None:
        containers = (pod.get("spec") or {}).get("containers") or [{}]
        name = str(containers[0].get("name", ""))
        image = str(containers[0].get("image", ""))
        if crash.reason == "Unschedulable":
            message = crash.message or "0/1 nodes are available: 1 Insufficient memory."
            self.events.record(pod, "Warning", "FailedScheduling", message, "default-scheduler")
        elif crash.reason in ("CrashLoopBackOff", "OOMKilled"):
            message = (
                f"Back-off restarting failed container {name} in pod {pod['metadata']['name']}"
            )
            self.events.record(pod, "Warning", "BackOff", message, "kubelet")
        elif crash.reason in ("ImagePullBackOff", "ErrImagePull"):
            message = f'Failed to pull image "{image}": not found'
            self.events.record(pod, "Warning", "Failed", message, "kubelet")
        else:
            message = crash.message or 'Error: secret "missing" not found'
            self.events.record(pod, "Warning", "Failed", message, "kubelet")

    # -- pods/log ------------------------------------------------------------------------

    def log(self, namespace: str, name: str, query: dict[str, str]) -> Iterator[str]:
        """The lines `GET pods/<name>/log` answers, as a real kubelet shapes them; with
        `follow`, new lines until the pod goes away or the stream is closed. Refusals
        (no such pod or container, no previous container, a waiting one) raise here,
        before any line is sent."""
        pod = self.api.get(operations.Target(self._rt, namespace, name))
        containers = [c.get("name") for c in (pod.get("spec") or {}).get("containers") or []]
        container = query.get("container") or ""
        if not container and len(containers) > 1:
            raise errors.bad_request(
                f"a container name must be specified for pod {name}, choose one of: "
                f"[{' '.join(str(c) for c in containers)}]"
            )
        container = container or str(containers[0])
        if container not in containers:
            raise errors.bad_request(f"container {container} is not valid for pod {name}")
        statuses = (pod.get("status") or {}).get("containerStatuses") or []
        state: Json = next((s for s in statuses if s.get("name") == container), {})
        previous = query.get("previous", "").lower() in ("true", "1")
        if previous and not state.get("lastState", {}).get("terminated"):
            raise errors.bad_request(
                f'previous terminated container "{container}" in pod "{name}" not found'
            )
        if not previous and "running" not in (state.get("state") or {}):
            waiting = (state.get("state") or {}).get("waiting") or {}
            raise errors.bad_request(
                f'container "{container}" in pod "{name}" is waiting to start: '
                f"{waiting.get('reason', 'ContainerCreating')}"
            )
        follow = query.get("follow", "").lower() in ("true", "1") and not previous
        return self._lines(pod, query, previous=previous, follow=follow)

    def _lines(
        self, pod: Json, query: dict[str, str], *, previous: bool, follow: bool
    ) -> Iterator[str]:
        # The snapshot is taken now, when the request arrives, not when the answer's first
        # byte is written: a line appended in between is followed, not lost.
        namespace, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        key = self._logs_key(pod)
        with self._lock:
            logs = self._logs.get(key, Logs()) if key else Logs()
            lines = list(logs.previous if previous else logs.current)
            seen = len(logs.current)
        since = query.get("sinceSeconds")
        if since:
            cutoff = time.time() - float(since)
            lines = [(stamp, line) for stamp, line in lines if stamp >= cutoff]
        tail = query.get("tailLines")
        if tail:
            lines = lines[-int(tail) :] if int(tail) > 0 else []
        stamped = query.get("timestamps", "").lower() in ("true", "1")
        first = [_shaped(stamp, line, stamped) for stamp, line in lines]
        if not follow or key is None:
            return iter(first)
        return self._followed(first, key, namespace, name, seen, stamped)

    def _followed(
        self, first: list[str], key: str, namespace: str, name: str, seen: int, stamped: bool
    ) -> Iterator[str]:
        yield from first
        while self.api.store.get(self._rt.key, namespace, name) is not None:
            with self._lock:
                if self._stopped:
                    return
                current = self._logs.get(key, Logs()).current
                fresh = current[seen:]
                seen = len(current)
                if not fresh:
                    self._lock.wait(0.2)
                    continue
            yield from (_shaped(stamp, line, stamped) for stamp, line in fresh)

    def _logs_key(self, pod: Json) -> str | None:
        namespace = pod["metadata"]["namespace"]
        owner: Json = next(iter(pod["metadata"].get("ownerReferences") or []), {})
        rs = self.api.store.get(self._rs_rt.key, namespace, str(owner.get("name", "")))
        with self._lock:
            for name in _names(rs) if rs is not None else ():
                if name in self._logs:
                    return name
        return None


def _shaped(stamp: float, line: str, stamped: bool) -> str:
    if not stamped:
        return line + "\n"
    moment = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(stamp))
    return f"{moment}.{int((stamp % 1) * 1e9):09d}Z {line}\n"


def _deployment_of(rs: Json) -> str | None:
    for ref in rs["metadata"].get("ownerReferences") or []:
        if ref.get("kind") == "Deployment" and ref.get("controller"):
            return str(ref.get("name"))
    return None


def _names(rs: Json) -> tuple[str, ...]:
    """How tests may name the Deployment that owns `rs`: `ns/name`, then `name`."""
    deployment = _deployment_of(rs)
    if deployment is None:
        return ()
    return (f"{rs['metadata']['namespace']}/{deployment}", deployment)


def pod_status(pod: Json, crash: Crash | None) -> Json:
    """The status a kubelet (or the scheduler) reports for `pod` in the `crash` state."""
    stamp = operations.now()
    containers = (pod.get("spec") or {}).get("containers") or []
    if crash is not None and crash.reason == "Unschedulable":
        message = crash.message or (
            "0/1 nodes are available: 1 Insufficient memory. preemption: 0/1 nodes are "
            "available: 1 No preemption victims found for incoming pod."
        )
        return {
            "phase": "Pending",
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "lastProbeTime": None,
                    "lastTransitionTime": stamp,
                    "reason": "Unschedulable",
                    "message": message,
                }
            ],
            "qosClass": "Burstable",
        }
    ready = crash is None
    pending = crash is not None and crash.reason in (
        "ImagePullBackOff",
        "ErrImagePull",
        "CreateContainerConfigError",
    )
    statuses = [_container_status(pod, c, crash if i == 0 else None, stamp) for i, c in
                enumerate(containers)]  # fmt: skip
    flag = "True" if ready else "False"
    not_ready = {} if ready else {"reason": "ContainersNotReady"}
    return {
        "phase": "Pending" if pending else "Running",
        "conditions": [
            {"type": "PodReadyToStartContainers", "status": "True", "lastTransitionTime": stamp},
            {"type": "Initialized", "status": "True", "lastTransitionTime": stamp},
            {"type": "Ready", "status": flag, "lastTransitionTime": stamp, **not_ready},
            {"type": "ContainersReady", "status": flag, "lastTransitionTime": stamp, **not_ready},
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": stamp},
        ],
        "hostIP": "10.0.0.10",
        "podIP": "10.244.0.10",
        "startTime": stamp,
        "containerStatuses": statuses,
        "qosClass": "Burstable",
    }


def _container_status(pod: Json, container: Json, crash: Crash | None, stamp: str) -> Json:
    name = str(container.get("name", ""))
    image = str(container.get("image", ""))
    base: Json = {
        "name": name,
        "image": image,
        "imageID": "",
        "ready": crash is None,
        "restartCount": 0,
        "started": crash is None,
    }
    if crash is None:
        return {
            **base,
            "imageID": f"{image}@sha256:{'0' * 64}",
            "containerID": f"containerd://{pod['metadata']['name']}-{name}",
            "state": {"running": {"startedAt": stamp}},
        }
    if crash.reason in ("CrashLoopBackOff", "OOMKilled"):
        uid = pod["metadata"].get("uid", "")
        return {
            **base,
            "imageID": f"{image}@sha256:{'0' * 64}",
            "containerID": f"containerd://{pod['metadata']['name']}-{name}",
            "restartCount": crash.restarts,
            "state": {
                "waiting": {
                    "reason": "CrashLoopBackOff",
                    "message": crash.message
                    or f"back-off 40s restarting failed container={name} "
                    f"pod={pod['metadata']['name']}_{pod['metadata']['namespace']}({uid})",
                }
            },
            "lastState": {
                "terminated": {
                    "exitCode": crash.exit_code,
                    "reason": "OOMKilled" if crash.reason == "OOMKilled" else "Error",
                    "startedAt": stamp,
                    "finishedAt": stamp,
                    "containerID": f"containerd://{pod['metadata']['name']}-{name}",
                }
            },
        }
    default_messages = {
        "ImagePullBackOff": f'Back-off pulling image "{image}"',
        "ErrImagePull": f'failed to pull and unpack image "{image}": not found',
        "CreateContainerConfigError": 'secret "missing" not found',
    }
    return {
        **base,
        "state": {
            "waiting": {
                "reason": crash.reason,
                "message": crash.message or default_messages[crash.reason],
            }
        },
    }
