"""What a real API server adds to or changes in an object on every write.

Defaulting is observable: a Deployment read back has `replicas: 1`, a RollingUpdate
strategy of 25%/25%, `progressDeadlineSeconds: 600`, `imagePullPolicy` derived from the
image tag, `terminationMessagePath` and friends; a Service gets a ClusterIP and
`targetPort`; a Secret's `stringData` is folded into base64 `data`; a Namespace is
labelled `kubernetes.io/metadata.name` (its `spec.finalizers` are set by the registry,
operations.py). Code that compares "what I rendered" with "what the cluster has" must
cope with all of that, so the fake does it too. Defaulted fields belong to no field
manager after an apply, as on a real server.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

Json = dict[str, Any]

NAMESPACE_LABEL = "kubernetes.io/metadata.name"


def apply(kind: str, obj: Json, old: Json | None, allocate_ip: Callable[[], str]) -> None:
    """Default and normalise `obj` in place (`old` is the live object on updates)."""
    handler = _HANDLERS.get(kind)
    if handler is not None:
        handler(obj, old, allocate_ip)


def _deployment(obj: Json, old: Json | None, allocate_ip: Callable[[], str]) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    strategy = spec.setdefault("strategy", {})
    strategy.setdefault("type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        rolling = strategy.setdefault("rollingUpdate", {})
        rolling.setdefault("maxUnavailable", "25%")
        rolling.setdefault("maxSurge", "25%")
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    pod_template(spec.setdefault("template", {}))


def _replicaset(obj: Json, old: Json | None, allocate_ip: Callable[[], str]) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    pod_template(spec.setdefault("template", {}))


def pod_template(template: Json) -> None:
    pod_spec(template.setdefault("spec", {}))


def _pod(obj: Json, old: Json | None, allocate_ip: Callable[[], str]) -> None:
    pod_spec(obj.setdefault("spec", {}))


def pod_spec(spec: Json) -> None:
    for name in ("initContainers", "containers"):
        for container in spec.get(name) or []:
            if isinstance(container, dict):
                _container(container)
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    for volume in spec.get("volumes") or []:
        for source in ("configMap", "secret"):
            if isinstance(volume, dict) and isinstance(volume.get(source), dict):
                volume[source].setdefault("defaultMode", 420)


def _pull_policy(image: str) -> str:
    if "@" in image:
        return "IfNotPresent"
    last = image.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else "latest"
    return "Always" if tag == "latest" else "IfNotPresent"


def _container(container: Json) -> None:
    for port in container.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
    for env in container.get("env") or []:
        field_ref = ((env or {}).get("valueFrom") or {}).get("fieldRef")
        if isinstance(field_ref, dict):
            field_ref.setdefault("apiVersion", "v1")
    container.setdefault("resources", {})
    for probe_name in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe = container.get(probe_name)
        if isinstance(probe, dict):
            probe.setdefault("timeoutSeconds", 1)
            probe.setdefault("periodSeconds", 10)
            probe.setdefault("successThreshold", 1)
            probe.setdefault("failureThreshold", 3)
            if isinstance(probe.get("httpGet"), dict):
                probe["httpGet"].setdefault("scheme", "HTTP")
    container.setdefault("terminationMessagePath", "/dev/termination-log")
    container.setdefault("terminationMessagePolicy", "File")
    container.setdefault("imagePullPolicy", _pull_policy(str(container.get("image", ""))))


def _service(obj: Json, old: Json | None, allocate_ip: Callable[[], str]) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    if spec["type"] != "ExternalName":
        old_spec = (old or {}).get("spec") or {}
        for allocated in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
            if allocated not in spec and allocated in old_spec:
                spec[allocated] = old_spec[allocated]
        if not spec.get("clusterIP"):
            spec["clusterIP"] = allocate_ip()
        spec.setdefault("clusterIPs", [spec["clusterIP"]])
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")
    spec.setdefault("sessionAffinity", "None")
    for port in spec.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
            if "port" in port:
                port.setdefault("targetPort", port["port"])


def _secret(obj: Json, old: Json | None, allocate_ip: Callable[[], str]) -> None:
    string_data = obj.pop("stringData", None)
    if isinstance(string_data, dict) and string_data:
        data = obj.setdefault("data", {})
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()
    obj.setdefault("type", "Opaque")


def _namespace(obj: Json, old: Json | None, allocate_ip: Callable[[], str]) -> None:
    meta = obj["metadata"]
    meta.setdefault("labels", {})[NAMESPACE_LABEL] = meta["name"]


def _network_policy(obj: Json, old: Json | None, allocate_ip: Callable[[], str]) -> None:
    spec = obj.setdefault("spec", {})
    if not spec.get("policyTypes"):
        types = ["Ingress"]
        if spec.get("egress"):
            types.append("Egress")
        spec["policyTypes"] = types


def _crd(obj: Json, old: Json | None, allocate_ip: Callable[[], str]) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("conversion", {"strategy": "None"})
    names = spec.setdefault("names", {})
    if "kind" in names:
        names.setdefault("singular", str(names["kind"]).lower())
        names.setdefault("listKind", f"{names['kind']}List")


_HANDLERS: dict[str, Callable[[Json, Json | None, Callable[[], str]], None]] = {
    "Deployment": _deployment,
    "ReplicaSet": _replicaset,
    "Pod": _pod,
    "Service": _service,
    "Secret": _secret,
    "Namespace": _namespace,
    "NetworkPolicy": _network_policy,
    "CustomResourceDefinition": _crd,
}
