"""Where one version of an agent answers on the cluster: a ready pod's `podIP:containerPort`.

The eval gate judges a new version before it takes traffic, so it cannot go through the
agent's Service or the gateway (the canary has weight 0, the Service never selects its
pods): it calls a ready pod of that version directly, as the gateway itself does. Pods
come from the target's watched cache (no API call); the container port from the
version's own rendered Deployment.
"""

from __future__ import annotations

from collections.abc import Iterable

from controller.targets.kubernetes import canaries, rendering
from controller.targets.kubernetes.client import KubeObject


def container_port(objects: Iterable[KubeObject]) -> int | None:
    """The agent container's port in a version's rendered Deployment."""
    for obj in objects:
        if obj.get("kind") != "Deployment":
            continue
        containers = obj["spec"]["template"]["spec"].get("containers") or []
        for container in containers:
            if container.get("name") != rendering.CONTAINER:
                continue
            for port in container.get("ports") or []:
                if port.get("name") == rendering.PORT_NAME:
                    return int(port["containerPort"])
    return None


def ready_address(pods: Iterable[KubeObject], *, canary: bool) -> str | None:
    """The IP of a ready pod, not being deleted, of the canary track or of the stable one;
    the lowest by name, so repeated runs call the same pod."""
    found: list[tuple[str, str]] = []
    for pod in pods:
        metadata = pod.get("metadata") or {}
        status = pod.get("status") or {}
        on_canary = (metadata.get("labels") or {}).get(canaries.TRACK) == canaries.CANARY_TRACK
        if on_canary != canary or metadata.get("deletionTimestamp"):
            continue
        address = status.get("podIP")
        if address and _ready(status):
            found.append((str(metadata.get("name", "")), str(address)))
    return min(found)[1] if found else None


def url(address: str, port: int) -> str:
    host = f"[{address}]" if ":" in address else address  # an IPv6 pod address
    return f"http://{host}:{port}"


def _ready(status: KubeObject) -> bool:
    return any(
        condition.get("type") == "Ready" and condition.get("status") == "True"
        for condition in status.get("conditions") or []
    )
