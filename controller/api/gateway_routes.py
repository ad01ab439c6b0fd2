"""The gateway's host → upstream table, built from the pods and Deployments it watches.

On a cluster Shipyard's router runs as the `shipyard gateway` Deployment. It finds each
agent version's ready pods through the API (one watch on Shipyard's pods, one on its
Deployments, by the `app.kubernetes.io/managed-by=shipyard` label) and answers each
agent's host from them, as the local router answers from its processes.

Which version is stable and which the canary, and the canary's weight, come from the
Deployments: the agent's own Deployment is stable; a canary runs as a second Deployment
labelled `shipyard.dev/track=canary` whose annotations carry its weight
(`shipyard.dev/canary-weight`, 0 to 100) and sticky header. The weight lives on the object
it concerns, so deleting the canary (abort, promotion) removes its weight in the same
write, and no record can outlive or contradict it.

A version is routed to only through its ready pods. While the stable Deployment rolls
to a new version that has no ready pod yet, the older versions' ready pods keep
answering; a canary without ready pods gets no traffic.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from controller.api import proxy
from controller.metrics.state import State, VersionInfo
from controller.targets.kubernetes import informer
from controller.targets.kubernetes.client import KubeClient, KubeObject
from controller.targets.kubernetes.rendering import PORT_NAME

MANAGED = "app.kubernetes.io/managed-by=shipyard"
AGENT = "shipyard.dev/agent"
ENVIRONMENT = "shipyard.dev/environment"
VERSION = "shipyard.dev/version"
TRACK = "shipyard.dev/track"
CANARY_TRACK = "canary"
WEIGHT = "shipyard.dev/canary-weight"
STICKY_HEADER = "shipyard.dev/canary-sticky-header"
DEFAULT_PORT = 8080

HostOf = Callable[[str, str], str]  # (agent, environment) → host name
Slot = tuple[str, str]  # (environment, agent)
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CanaryTraffic:
    version: str
    weight: int
    sticky_header: str | None


@dataclass
class _Slot:
    stable: str | None = None
    canary: CanaryTraffic | None = None
    endpoints: dict[str, list[tuple[str, int]]] = field(default_factory=dict)  # version → pods


def routes(
    deployments: Iterable[KubeObject], pods: Iterable[KubeObject], host_of: HostOf
) -> dict[str, proxy.Upstream]:
    """Every agent host with ready pods, and the upstream (canary folded in) answering it."""
    slots: dict[Slot, _Slot] = {}
    for deployment in deployments:
        metadata = deployment.get("metadata") or {}
        labels = metadata.get("labels") or {}
        slot = _slot_of(labels)
        if slot is None or metadata.get("deletionTimestamp"):
            continue
        entry = slots.setdefault(slot, _Slot())
        if labels.get(TRACK) == CANARY_TRACK:
            annotations = metadata.get("annotations") or {}
            entry.canary = CanaryTraffic(
                labels[VERSION],
                _weight(annotations.get(WEIGHT), metadata.get("name", "")),
                annotations.get(STICKY_HEADER) or None,
            )
        else:
            entry.stable = labels[VERSION]
    for pod in pods:
        metadata = pod.get("metadata") or {}
        labels = metadata.get("labels") or {}
        slot = _slot_of(labels)
        address = _ready_address(pod)
        if slot is None or address is None:
            continue
        entry = slots.setdefault(slot, _Slot())
        entry.endpoints.setdefault(labels[VERSION], []).append((address, _port(pod)))
    table: dict[str, proxy.Upstream] = {}
    for (environment, agent), entry in slots.items():
        upstream = _upstream(agent, environment, entry)
        if upstream is None:
            continue
        try:
            table[host_of(agent, environment)] = upstream
        except ValueError as error:  # names are validated upstream; never fail the table
            _log.warning("no route for %s in %s: %s", agent, environment, error)
    return table


def _upstream(agent: str, environment: str, entry: _Slot) -> proxy.Upstream | None:
    canary_version = entry.canary.version if entry.canary is not None else None
    stable_version = _stable_version(entry, canary_version)
    canary = None
    if entry.canary is not None and entry.endpoints.get(entry.canary.version):
        canary = _version(agent, environment, entry.canary.version, entry)
    if stable_version is None:
        return canary  # nothing else can answer: better the canary than an error
    stable = _version(agent, environment, stable_version, entry)
    if canary is None or entry.canary is None:
        return stable
    sticky = entry.canary.sticky_header
    return proxy.Upstream(
        agent,
        environment,
        stable.version,
        0,
        canary=canary,
        canary_weight=entry.canary.weight,
        sticky_header=sticky.lower().encode() if sticky else None,
        endpoints=stable.endpoints,
    )


def _stable_version(entry: _Slot, canary_version: str | None) -> str | None:
    """The stable Deployment's version once it has ready pods; until then the older
    version with the most ready pods (a rolling update under way)."""
    if entry.stable is not None and entry.endpoints.get(entry.stable):
        return entry.stable
    others = sorted(
        (-len(pods), version)
        for version, pods in entry.endpoints.items()
        if version != canary_version and pods
    )
    return others[0][1] if others else None


def _version(agent: str, environment: str, version: str, entry: _Slot) -> proxy.Upstream:
    endpoints = tuple(sorted(entry.endpoints[version]))
    return proxy.Upstream(agent, environment, version, 0, endpoints=endpoints)


def _slot_of(labels: Mapping[str, str]) -> Slot | None:
    agent, environment, version = labels.get(AGENT), labels.get(ENVIRONMENT), labels.get(VERSION)
    if not agent or not environment or not version:
        return None
    return environment, agent


def _weight(raw: str | None, name: str) -> int:
    if raw is None:
        return 0
    try:
        return max(0, min(100, int(raw)))
    except ValueError:
        _log.warning("Deployment %s: %s=%r is not a number; weight 0", name, WEIGHT, raw)
        return 0


def _ready_address(pod: KubeObject) -> str | None:
    metadata = pod.get("metadata") or {}
    status = pod.get("status") or {}
    if metadata.get("deletionTimestamp") or not status.get("podIP"):
        return None
    ready = any(
        condition.get("type") == "Ready" and condition.get("status") == "True"
        for condition in status.get("conditions") or []
    )
    return str(status["podIP"]) if ready else None


def _port(pod: KubeObject) -> int:
    """The container port named `http` (Shipyard's), else the first one declared."""
    declared = [
        port
        for container in (pod.get("spec") or {}).get("containers") or []
        for port in container.get("ports") or []
    ]
    for port in declared:
        if port.get("name") == PORT_NAME:
            return int(port["containerPort"])
    return int(declared[0]["containerPort"]) if declared else DEFAULT_PORT


class ClusterRoutes:
    """The live table, rebuilt whenever a watched pod or Deployment changes."""

    def __init__(self, client: KubeClient, host_of: HostOf) -> None:
        self._host_of = host_of
        self._lock = threading.Lock()
        self.hosts: Mapping[str, proxy.Upstream] = {}
        self._versions: set[tuple[str, str, str]] = set()
        self._deployments = informer.Informer(
            client, "apps/v1", "Deployment", MANAGED, on_change=self._rebuild
        )
        self._pods = informer.Informer(client, "v1", "Pod", MANAGED, on_change=self._rebuild)

    def start(self) -> ClusterRoutes:
        self._deployments.start()
        self._pods.start()
        return self

    @property
    def synced(self) -> bool:
        return self._deployments.synced and self._pods.synced

    def state(self) -> State:
        """The versions that still have a pod or Deployment: the request series of any
        other (a retired version, an aborted canary) are dropped at the next scrape."""
        return State(
            versions=tuple(
                VersionInfo(agent, environment, version, commit="", branch="")
                for environment, agent, version in self._versions
            )
        )

    def stop(self) -> None:
        self._deployments.stop()
        self._pods.stop()

    def _rebuild(self) -> None:
        # Both watch threads call this; a rebuild reads both caches whole, so the last
        # one to finish holds the newest view of both.
        with self._lock:
            deployments, pods = self._deployments.items(), self._pods.items()
            self.hosts = routes(deployments, pods, self._host_of)
            self._versions = {
                (*slot, labels[VERSION])
                for obj in (*deployments, *pods)
                if (slot := _slot_of(labels := (obj.get("metadata") or {}).get("labels") or {}))
            }
