"""What the fake serves: one `ResourceType` per group/version/resource, built-ins plus CRDs.

Discovery, routing, validation, defaulting and table printing all key off this table,
so a resource exists everywhere at once or nowhere. A served CustomResourceDefinition
adds its versions here (and to discovery) as soon as it is created, and removing it
takes them away again.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

Json = dict[str, Any]

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
NO_COLLECTION_DELETE = ("create", "delete", "get", "list", "patch", "update", "watch")
SUBRESOURCE_VERBS = ("get", "patch", "update")


@dataclass(frozen=True)
class PrinterColumn:
    """An `additionalPrinterColumns` entry of a CRD version."""

    name: str
    type: str
    json_path: str
    description: str = ""
    priority: int = 0
    format: str = ""


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    subresources: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    has_generation: bool = False
    builtin: bool = True
    printer_columns: tuple[PrinterColumn, ...] = ()
    # CRDs only: the version's openAPIV3Schema, read for list types and map types.
    openapi_schema: Json | None = field(default=None, compare=False, hash=False)
    storage_version: str = ""

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def key(self) -> str:
        """Storage key, the same for every version of a resource."""
        return f"{self.group}/{self.plural}"

    @property
    def group_version(self) -> str:
        return self.api_version

    def supports(self, verb: str) -> bool:
        return verb in self.verbs


def _core(plural: str, kind: str, namespaced: bool = True, **extra: Any) -> ResourceType:
    return ResourceType("", "v1", plural, kind.lower(), kind, namespaced, **extra)


BUILTINS: tuple[ResourceType, ...] = (
    _core(
        "namespaces",
        "Namespace",
        namespaced=False,
        short_names=("ns",),
        verbs=NO_COLLECTION_DELETE,
        subresources=("status", "finalize"),
    ),
    _core("configmaps", "ConfigMap", short_names=("cm",)),
    _core("secrets", "Secret"),
    _core(
        "services",
        "Service",
        short_names=("svc",),
        subresources=("status",),
        categories=("all",),
    ),
    _core(
        "pods",
        "Pod",
        short_names=("po",),
        subresources=("status", "log"),
        categories=("all",),
    ),
    _core("events", "Event", short_names=("ev",)),
    _core("resourcequotas", "ResourceQuota", short_names=("quota",), subresources=("status",)),
    _core("limitranges", "LimitRange", short_names=("limits",)),
    _core("serviceaccounts", "ServiceAccount", short_names=("sa",)),
    ResourceType(
        "apps",
        "v1",
        "deployments",
        "deployment",
        "Deployment",
        True,
        short_names=("deploy",),
        subresources=("status", "scale"),
        categories=("all",),
        has_generation=True,
    ),
    ResourceType(
        "apps",
        "v1",
        "replicasets",
        "replicaset",
        "ReplicaSet",
        True,
        short_names=("rs",),
        subresources=("status", "scale"),
        categories=("all",),
        has_generation=True,
    ),
    ResourceType(
        "networking.k8s.io",
        "v1",
        "ingresses",
        "ingress",
        "Ingress",
        True,
        short_names=("ing",),
        subresources=("status",),
        has_generation=True,
    ),
    ResourceType(
        "networking.k8s.io",
        "v1",
        "networkpolicies",
        "networkpolicy",
        "NetworkPolicy",
        True,
        short_names=("netpol",),
        has_generation=True,
    ),
    ResourceType("coordination.k8s.io", "v1", "leases", "lease", "Lease", True),
    ResourceType("rbac.authorization.k8s.io", "v1", "roles", "role", "Role", True),
    ResourceType(
        "rbac.authorization.k8s.io", "v1", "rolebindings", "rolebinding", "RoleBinding", True
    ),
    ResourceType(
        "rbac.authorization.k8s.io", "v1", "clusterroles", "clusterrole", "ClusterRole", False
    ),
    ResourceType(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterrolebindings",
        "clusterrolebinding",
        "ClusterRoleBinding",
        False,
    ),
    ResourceType(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "customresourcedefinition",
        "CustomResourceDefinition",
        False,
        short_names=("crd", "crds"),
        subresources=("status",),
        categories=("api-extensions",),
        has_generation=True,
    ),
)


def types_of_crd(crd: Json) -> list[ResourceType]:
    """The resource types a CRD serves (one per served version)."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    group = str(spec.get("group", ""))
    plural = str(names.get("plural", ""))
    kind = str(names.get("kind", ""))
    singular = str(names.get("singular") or kind.lower())
    namespaced = spec.get("scope", "Namespaced") == "Namespaced"
    versions = spec.get("versions") or []
    storage = next((str(v["name"]) for v in versions if v.get("storage")), "")
    result = []
    for version in versions:
        if not version.get("served", True):
            continue
        subresources = version.get("subresources") or {}
        columns = tuple(
            PrinterColumn(
                name=str(c.get("name", "")),
                type=str(c.get("type", "string")),
                json_path=str(c.get("jsonPath", "")),
                description=str(c.get("description", "")),
                priority=int(c.get("priority", 0)),
                format=str(c.get("format", "")),
            )
            for c in version.get("additionalPrinterColumns") or []
        )
        result.append(
            ResourceType(
                group,
                str(version["name"]),
                plural,
                singular,
                kind,
                namespaced,
                short_names=tuple(names.get("shortNames") or ()),
                subresources=tuple(s for s in ("status", "scale") if s in subresources),
                categories=tuple(names.get("categories") or ()),
                has_generation=True,
                builtin=False,
                printer_columns=columns,
                openapi_schema=(version.get("schema") or {}).get("openAPIV3Schema"),
                storage_version=storage,
            )
        )
    return result


class Registry:
    """The served resource types; thread-safe, changed by CRD writes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._types: dict[tuple[str, str, str], ResourceType] = {}
        self._crds: dict[str, list[ResourceType]] = {}
        for rt in BUILTINS:
            self._types[(rt.group, rt.version, rt.plural)] = rt

    def find(self, group: str, version: str, plural: str) -> ResourceType | None:
        with self._lock:
            return self._types.get((group, version, plural))

    def all(self) -> list[ResourceType]:
        with self._lock:
            return list(self._types.values())

    def by_key(self, key: str) -> ResourceType | None:
        """The storage version's type of a resource (or any served version)."""
        with self._lock:
            candidates = [rt for rt in self._types.values() if rt.key == key]
        for rt in candidates:
            if rt.builtin or rt.version == rt.storage_version:
                return rt
        return candidates[0] if candidates else None

    def group_versions(self) -> list[tuple[str, list[str]]]:
        """(group, versions) in registration order, the core group ("") first."""
        seen: dict[str, list[str]] = {}
        with self._lock:
            for rt in self._types.values():
                versions = seen.setdefault(rt.group, [])
                if rt.version not in versions:
                    versions.append(rt.version)
        return list(seen.items())

    def resources(self, group: str, version: str) -> list[ResourceType]:
        with self._lock:
            return [rt for rt in self._types.values() if (rt.group, rt.version) == (group, version)]

    def install_crd(self, crd: Json) -> None:
        name = str(crd["metadata"]["name"])
        with self._lock:
            for rt in self._crds.pop(name, []):
                self._types.pop((rt.group, rt.version, rt.plural), None)
            types = types_of_crd(crd)
            self._crds[name] = types
            for rt in types:
                self._types[(rt.group, rt.version, rt.plural)] = rt

    def remove_crd(self, name: str) -> list[ResourceType]:
        with self._lock:
            removed = self._crds.pop(name, [])
            for rt in removed:
                self._types.pop((rt.group, rt.version, rt.plural), None)
            return removed
