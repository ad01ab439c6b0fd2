"""core/v1 Events, as kube-controller-manager, the scheduler and the kubelet record them.

Only the ones a person (or `kubectl describe`) reads during a rollout: the Deployment
controller's `ScalingReplicaSet`, the ReplicaSet controller's `SuccessfulCreate`, the
scheduler's `FailedScheduling` and the kubelet's `BackOff` / `Failed` for a crashing or
unpullable container. A repeated event bumps `count` and `lastTimestamp` of the same
object, as the client-go recorder does.
"""

from __future__ import annotations

import secrets
import threading
from typing import Any

from tests.fake_apiserver import operations
from tests.fake_apiserver.resources import Registry, ResourceType

Json = dict[str, Any]


class Recorder:
    def __init__(self, api: operations.Api, registry: Registry) -> None:
        self.api = api
        self.registry = registry
        self._lock = threading.Lock()
        self._names: dict[tuple[str, str, str, str], str] = {}  # (ns, uid, reason, msg) → name

    @property
    def _rt(self) -> ResourceType:
        rt = self.registry.find("", "v1", "events")
        assert rt is not None
        return rt

    def record(self, involved: Json, kind: str, reason: str, message: str, component: str) -> None:
        """One `kind` (Normal | Warning) event about `involved` (a stored object)."""
        meta = involved["metadata"]
        namespace = str(meta.get("namespace", "default"))
        key = (namespace, str(meta.get("uid", "")), reason, message)
        stamp = operations.now()
        with self._lock:
            name = self._names.get(key)
        if name is not None:

            def bump(event: Json) -> None:
                event["count"] = int(event.get("count") or 1) + 1
                event["lastTimestamp"] = stamp

            if self.api.update_as_controller(self._rt, namespace, name, bump) is not None:
                return
        name = f"{meta['name']}.{secrets.token_hex(8)}"
        with self._lock:
            self._names[key] = name
        self.api.create_as_controller(
            self._rt,
            {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"name": name, "namespace": namespace},
                "involvedObject": {
                    "kind": involved.get("kind"),
                    "namespace": namespace,
                    "name": meta["name"],
                    "uid": meta.get("uid"),
                    "apiVersion": involved.get("apiVersion"),
                    "resourceVersion": meta.get("resourceVersion"),
                },
                "reason": reason,
                "message": message,
                "source": {"component": component},
                "firstTimestamp": stamp,
                "lastTimestamp": stamp,
                "count": 1,
                "type": kind,
                "reportingComponent": component,
                "reportingInstance": "",
            },
        )
