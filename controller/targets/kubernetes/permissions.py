"""Every Kubernetes API call the target makes, as (API group, resource, verb) triples.

One list serves two checks: the install's RBAC (`manifests/rbac.yaml`) must grant each of
these and nothing else (a test compares them), and the code that talks to the cluster
asserts that every call it makes is listed here. A new call therefore fails a test until
both this list and the RBAC say it is allowed: least privilege stays true by construction.

Secrets are read in one namespace only, production's (a Role there, `SOURCE_SECRETS`):
that is where operators scope them for previews (`shipyard.dev/scope`). Agents reference
them by `secretKeyRef` and the kubelet reads them; the controller reads them to check
their scope and to copy those scoped to previews into preview namespaces, which is all it
writes (create and patch, `SECRET_COPIES`). Secrets are never listed or watched.
"""

from __future__ import annotations

from typing import NamedTuple


class Permission(NamedTuple):
    group: str  # "" is the core API group
    resource: str  # plural, with "/subresource" where one is meant
    verb: str


_MANAGE = ("get", "list", "watch", "create", "patch", "delete")

# Objects the target renders and applies in production and preview namespaces.
MANAGED_KINDS: tuple[tuple[str, str], ...] = (
    ("", "namespaces"),
    ("", "configmaps"),
    ("", "services"),
    ("", "resourcequotas"),
    ("", "limitranges"),
    ("apps", "deployments"),
    ("networking.k8s.io", "ingresses"),
    ("networking.k8s.io", "networkpolicies"),
)

# Copies of Secrets scoped to previews, written into preview namespaces (server-side apply).
SECRET_COPIES: frozenset[Permission] = frozenset(
    {Permission("", "secrets", "create"), Permission("", "secrets", "patch")}
)

# In the production namespace only: reading the Secrets referenced by agents.
SOURCE_SECRETS: frozenset[Permission] = frozenset({Permission("", "secrets", "get")})

# Cluster-wide: the managed kinds, events about them, and agent logs for `shipyard logs`.
CLUSTER: frozenset[Permission] = frozenset(
    {Permission(group, resource, verb) for group, resource in MANAGED_KINDS for verb in _MANAGE}
    | {
        # Gateway API HTTPRoutes, applied only with --http-route-gateway (`route_weights`).
        Permission("gateway.networking.k8s.io", "httproutes", "create"),
        Permission("gateway.networking.k8s.io", "httproutes", "patch"),
        Permission("", "events", "create"),
        Permission("", "events", "patch"),
        # Pods are watched during rollouts for crash states (CrashLoopBackOff, image
        # pulls, unschedulable…) and read for `shipyard logs` and rollout messages.
        Permission("", "pods", "get"),
        Permission("", "pods", "list"),
        Permission("", "pods", "watch"),
        Permission("", "pods/log", "get"),
    }
    | SECRET_COPIES
)

# In the controller's own namespace only: the leader-election Lease.
LEADER_ELECTION: frozenset[Permission] = frozenset(
    {
        Permission("coordination.k8s.io", "leases", "get"),
        Permission("coordination.k8s.io", "leases", "create"),
        Permission("coordination.k8s.io", "leases", "update"),
    }
)

REQUIRED: frozenset[Permission] = CLUSTER | LEADER_ELECTION | SOURCE_SECRETS

# `shipyard gateway`, cluster-wide and read-only: it watches Shipyard's pods (ready
# addresses) and Deployments (stable version, canary weight); its own ClusterRole in
# manifests/gateway.yaml grants exactly these.
GATEWAY: frozenset[Permission] = frozenset(
    {
        Permission("", "pods", "list"),
        Permission("", "pods", "watch"),
        Permission("apps", "deployments", "list"),
        Permission("apps", "deployments", "watch"),
    }
)


def allowed(group: str, resource: str, verb: str) -> bool:
    """Whether the target may make this call (the applier asserts it before each one)."""
    return Permission(group, resource, verb) in REQUIRED
