"""Objects that send an environment's agent traffic through `shipyard gateway`.

An Ingress may only name a Service of its own namespace, and agents live in production's
and each preview's namespace while the gateway lives in the install's. So each
environment gets a Service `shipyard-gateway` of type ExternalName that names the
gateway's Service (`rendering.gateway_service`), and its agents' Ingresses point there
(`rendering.ingress`). The preview NetworkPolicy admits the gateway's namespace, since
requests to the pods now come from the gateway.

Where a cluster has Gateway API, `http_route` renders the alternative: an HTTPRoute per
agent whose `backendRefs` weigh the stable and the canary Service (a canary then needs
a Service of its own, `canary_service`); `route_weights` applies it when the controller
runs with `--http-route-gateway`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from controller.targets.kubernetes import rendering

GATEWAY_SERVICE = rendering.GATEWAY_SERVICE
DEFAULT_GATEWAY = f"{GATEWAY_SERVICE}.shipyard-system"
HTTP_ROUTE_API = "gateway.networking.k8s.io/v1"


@dataclass(frozen=True)
class GatewayRef:
    """The gateway's Service: `name.namespace`, as `--gateway` takes it."""

    name: str
    namespace: str

    @classmethod
    def parse(cls, text: str) -> GatewayRef:
        name, dot, namespace = text.partition(".")
        if not dot or not rendering.is_dns_label(name) or not rendering.is_dns_label(namespace):
            raise rendering.RenderError(
                f"gateway {text!r} is not SERVICE.NAMESPACE (e.g. {DEFAULT_GATEWAY})"
            )
        return cls(name, namespace)

    @property
    def host(self) -> str:
        return f"{self.name}.{self.namespace}.svc.cluster.local"


def canary_service(stable_service: rendering.KubeObject, canary_name: str) -> rendering.KubeObject:
    """The canary Deployment's own Service, for HTTPRoute weights to name."""
    metadata = stable_service["metadata"]
    labels = {**metadata["labels"], rendering.NAME_LABEL: canary_name}
    selector = {**stable_service["spec"]["selector"], rendering.NAME_LABEL: canary_name}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": canary_name, "namespace": metadata["namespace"], "labels": labels},
        "spec": {**stable_service["spec"], "selector": selector},
    }


def http_route(
    workload: rendering.Workload,
    settings: rendering.EnvironmentSettings,
    *,
    parent: GatewayRef,
    canary: tuple[str, int] | None = None,
) -> rendering.KubeObject:
    """An HTTPRoute for the agent's host on the Gateway `parent`: all to the agent's
    Service, or, with `canary=(service, weight)`, `weight` percent to the canary's."""
    if workload.host is None:
        raise rendering.RenderError(f'agent "{workload.name}" has no host to route')
    return _route(
        workload.name,
        settings.namespace,
        rendering.labels(workload),
        workload.host,
        parent=parent,
        canary=canary,
    )


def route_of(
    objects: tuple[rendering.KubeObject, ...],
    *,
    parent: GatewayRef,
    canary: tuple[str, int] | None = None,
) -> rendering.KubeObject:
    """`http_route` from a version's rendered objects (its Service and Ingress host), as
    the Kubernetes target holds them."""
    services = [obj for obj in objects if obj["kind"] == "Service"]
    hosts = [
        rule["host"]
        for obj in objects
        if obj["kind"] == "Ingress"
        for rule in obj["spec"].get("rules") or []
        if rule.get("host")
    ]
    if len(services) != 1 or not hosts:
        raise rendering.RenderError("an HTTPRoute needs the agent's Service and its host")
    metadata = services[0]["metadata"]
    return _route(
        metadata["name"],
        metadata["namespace"],
        dict(metadata.get("labels") or {}),
        hosts[0],
        parent=parent,
        canary=canary,
    )


def _route(
    name: str,
    namespace: str,
    labels: dict[str, str],
    host: str,
    *,
    parent: GatewayRef,
    canary: tuple[str, int] | None,
) -> rendering.KubeObject:
    backends: list[dict[str, Any]] = []
    canary_weight = canary[1] if canary is not None else 0
    backends.append(_backend(name, 100 - canary_weight))
    if canary is not None:
        backends.append(_backend(canary[0], canary_weight))
    return {
        "apiVersion": HTTP_ROUTE_API,
        "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "parentRefs": [{"name": parent.name, "namespace": parent.namespace}],
            "hostnames": [host],
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                    "backendRefs": backends,
                }
            ],
        },
    }


def _backend(service: str, weight: int) -> dict[str, Any]:
    return {"name": service, "port": rendering.SERVICE_PORT, "weight": max(0, min(100, weight))}
