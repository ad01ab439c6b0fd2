"""A canary on a cluster: a second Deployment beside the stable one, and its weight.

The canary runs as `<agent>-canary`, rendered from the new version's own Deployment
with a selector of its own (so neither the stable Deployment nor the agent's Service
ever picks its pods) and the label `shipyard.dev/track=canary`. Its share of the
traffic is an annotation on that Deployment, `shipyard.dev/canary-weight`, which
`shipyard gateway` reads through its watch (`controller.api.gateway_routes`): the weight
lives and dies with the canary, so an abort (delete the Deployment) takes the canary's
traffic away in the same write. The annotation is applied by a field manager of its own,
`shipyard-traffic`, so re-applying the Deployment never resets it.

Weights are written by one thread per target, newest value wins: the canary loop sets
them from the event loop and must not wait for the API.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from dataclasses import dataclass

from controller.targets.kubernetes import errors, rendering
from controller.targets.kubernetes.client import KubeClient, KubeObject

TRACK = "shipyard.dev/track"
CANARY_TRACK = "canary"
WEIGHT = "shipyard.dev/canary-weight"
STICKY_HEADER = "shipyard.dev/canary-sticky-header"
TRAFFIC_MANAGER = "shipyard-traffic"
_SUFFIX = "-canary"
_log = logging.getLogger(__name__)


def canary_name(agent: str) -> str:
    """`<agent>-canary`, shortened with a hash when that passes a DNS label's 63."""
    name = agent + _SUFFIX
    if len(name) <= 63:
        return name
    digest = hashlib.sha256(agent.encode()).hexdigest()[:6]
    return f"{agent[: 63 - len(_SUFFIX) - 7]}-{digest}{_SUFFIX}"


def canary_objects(agent: str, objects: tuple[KubeObject, ...]) -> tuple[KubeObject, ...]:
    """The new version's ConfigMap and its Deployment renamed and relabelled as the canary
    (no Service, no Ingress: its traffic comes through the gateway only)."""
    result: list[KubeObject] = []
    name = canary_name(agent)
    for obj in objects:
        if obj["kind"] == "ConfigMap":
            result.append(obj)
        elif obj["kind"] == "Deployment":
            deployment = json.loads(json.dumps(obj))
            deployment["metadata"]["name"] = name
            spec = deployment["spec"]
            for labels in (
                deployment["metadata"]["labels"],
                spec["selector"]["matchLabels"],
                spec["template"]["metadata"]["labels"],
            ):
                labels[rendering.NAME_LABEL] = name
            for labels in (
                deployment["metadata"]["labels"],
                spec["template"]["metadata"]["labels"],
            ):
                labels[TRACK] = CANARY_TRACK
            result.append(deployment)
    return tuple(result)


def weight_patch(namespace: str, name: str, weight: int, sticky_header: str | None) -> KubeObject:
    """What the traffic manager applies: only the weight (and sticky header) annotations."""
    annotations = {WEIGHT: str(weight)}
    if sticky_header:
        annotations[STICKY_HEADER] = sticky_header
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
    }


@dataclass(frozen=True)
class _Weight:
    namespace: str
    name: str
    weight: int
    sticky_header: str | None


class WeightPublisher:
    """Writes canary weights in the background, coalescing: the newest per Deployment."""

    def __init__(self, client: KubeClient) -> None:
        self.client = client
        self._pending: dict[tuple[str, str], _Weight] = {}
        self._written: dict[tuple[str, str], _Weight] = {}
        self._cv = threading.Condition()
        self._busy = False
        self._thread: threading.Thread | None = None
        self._stopped = False

    def publish(self, namespace: str, name: str, weight: int, sticky_header: str | None) -> None:
        with self._cv:
            self._pending[(namespace, name)] = _Weight(namespace, name, weight, sticky_header)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="canary weights", daemon=True
                )
                self._thread.start()
            self._cv.notify()

    def write_now(self, namespace: str, name: str, weight: int, sticky_header: str | None) -> None:
        """Write at once from the calling thread (a canary's first weight, before it counts
        as started)."""
        wanted = _Weight(namespace, name, weight, sticky_header)
        self.client.apply(
            weight_patch(namespace, name, weight, sticky_header), field_manager=TRAFFIC_MANAGER
        )
        with self._cv:
            self._written[(namespace, name)] = wanted

    def forget(self, namespace: str, name: str) -> None:
        """The canary is gone: drop a weight not written yet."""
        with self._cv:
            self._pending.pop((namespace, name), None)
            self._written.pop((namespace, name), None)

    def settled(self, timeout: float) -> bool:
        """Wait until every published weight is written (or given up on)."""
        with self._cv:
            return self._cv.wait_for(lambda: not self._pending and not self._busy, timeout)

    def stop(self) -> None:
        with self._cv:
            self._stopped = True
            self._cv.notify_all()

    def _run(self) -> None:
        while True:
            with self._cv:
                self._cv.wait_for(lambda: self._pending or self._stopped)
                if self._stopped:
                    return
                key, wanted = next(iter(self._pending.items()))
                del self._pending[key]
                self._busy = True
            try:
                if self._written.get(key) != wanted:
                    self.client.apply(
                        weight_patch(wanted.namespace, wanted.name, wanted.weight,
                                     wanted.sticky_header),
                        field_manager=TRAFFIC_MANAGER,
                    )  # fmt: skip
                    self._written[key] = wanted
            except errors.NotFound:
                pass  # the canary went meanwhile: nothing left to weigh
            except errors.ApiError as error:
                _log.warning("canary %s/%s weight %d%%: %s", wanted.namespace, wanted.name,
                             wanted.weight, error)  # fmt: skip
            finally:
                with self._cv:
                    self._busy = False
                    self._cv.notify_all()
