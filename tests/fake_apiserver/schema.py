"""The little structural schema knowledge merging needs: which lists merge by which keys.

Server-side apply (structured-merge-diff) and strategic merge patch both treat a list
either as one atomic value or as a map keyed by some fields, and they do *not* agree
on the keys (apply keys container ports by `containerPort`+`protocol`, strategic merge
by `containerPort` alone; `volumeMounts` go by `mountPath` in both). Built-in types
carry the keys Kubernetes declares (`+listType=map`, `+listMapKey`,
`patchMergeKey`); custom resources read `x-kubernetes-list-type`,
`x-kubernetes-list-map-keys` and `x-kubernetes-map-type` from their CRD's schema, and
their lists are atomic unless it says otherwise, exactly as on a real server.

A path here is the chain of field names from the object root, list items skipped:
`("spec", "template", "spec", "containers", "env")`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Literal, Protocol

Json = dict[str, Any]
FieldNames = tuple[str, ...]


@dataclass(frozen=True)
class ListRule:
    type: Literal["atomic", "set", "map"]
    keys: tuple[str, ...] = ()
    # Key fields that the server defaults (ports' protocol), so items match without them.
    key_defaults: tuple[tuple[str, Any], ...] = ()


ATOMIC = ListRule("atomic")
SET = ListRule("set")


def _map(*keys: str, defaults: tuple[tuple[str, Any], ...] = ()) -> ListRule:
    return ListRule("map", keys, defaults)


class Schema(Protocol):
    """What the merge code asks about a type."""

    def list_rule(self, path: FieldNames) -> ListRule: ...

    def atomic_map(self, path: FieldNames) -> bool: ...

    def smp_key(self, path: FieldNames) -> str | None: ...

    def smp_merges_primitives(self, path: FieldNames) -> bool: ...


_CONTAINER_LISTS = {"containers", "initContainers", "ephemeralContainers"}
_ATOMIC_MAPS = {"selector", "podSelector", "namespaceSelector", "labelSelector", "nodeSelector"}
_ATOMIC_STRUCTS = {"roleRef"}
_TCP = (("protocol", "TCP"),)


def _meta_rule(path: FieldNames) -> ListRule | None:
    if path == ("metadata", "ownerReferences"):
        return _map("uid")
    if path == ("metadata", "finalizers"):
        return SET
    return None


# Every walk of an object asks for the rule of each list it meets, at every write.
@functools.lru_cache(maxsize=4096)
def _builtin_list_rule(kind: str, path: FieldNames) -> ListRule:
    meta = _meta_rule(path)
    if meta is not None:
        return meta
    last = path[-1] if path else ""
    if last in _CONTAINER_LISTS:
        return _map("name")
    if last == "ports":
        if kind == "Service" and path == ("spec", "ports"):
            return _map("port", "protocol", defaults=_TCP)
        if _CONTAINER_LISTS & set(path[:-1]):
            return _map("containerPort", "protocol", defaults=_TCP)
        return ATOMIC
    simple = {
        "env": "name",
        "volumes": "name",
        "imagePullSecrets": "name",
        "resourceClaims": "name",
        "volumeMounts": "mountPath",
        "volumeDevices": "devicePath",
        "conditions": "type",
        "hostAliases": "ip",
    }
    if last in simple:
        return _map(simple[last])
    if last == "topologySpreadConstraints":
        return _map("topologyKey", "whenUnsatisfiable")
    return ATOMIC


@dataclass(frozen=True)
class BuiltinSchema:
    """The keys Kubernetes' Go types declare, for the built-in kinds the fake serves."""

    kind: str

    def list_rule(self, path: FieldNames) -> ListRule:
        return _builtin_list_rule(self.kind, path)

    def atomic_map(self, path: FieldNames) -> bool:
        return bool(path) and (path[-1] in _ATOMIC_MAPS or path[-1] in _ATOMIC_STRUCTS)

    def smp_key(self, path: FieldNames) -> str | None:
        last = path[-1] if path else ""
        if path == ("metadata", "ownerReferences"):
            return "uid"
        if last in _CONTAINER_LISTS:
            return "name"
        if last == "ports":
            if self.kind == "Service" and path == ("spec", "ports"):
                return "port"
            if _CONTAINER_LISTS & set(path[:-1]):
                return "containerPort"
            return None
        keys = {
            "env": "name",
            "volumes": "name",
            "imagePullSecrets": "name",
            "resourceClaims": "name",
            "volumeMounts": "mountPath",
            "volumeDevices": "devicePath",
            "conditions": "type",
            "hostAliases": "ip",
            "topologySpreadConstraints": "topologyKey",
        }
        return keys.get(last)

    def smp_merges_primitives(self, path: FieldNames) -> bool:
        return path == ("metadata", "finalizers")


@dataclass(frozen=True)
class CrdSchema:
    """Rules read from a CRD version's openAPIV3Schema (atomic lists by default)."""

    root: Json | None

    def _node(self, path: FieldNames) -> Json | None:
        node = self.root
        for name in path:
            if node is None:
                return None
            if node.get("type") == "array":
                node = node.get("items") or {}
            properties = node.get("properties") or {}
            if name in properties:
                node = properties[name]
            elif isinstance(node.get("additionalProperties"), dict):
                node = node["additionalProperties"]
            else:
                return None
        return node

    def list_rule(self, path: FieldNames) -> ListRule:
        meta = _meta_rule(path)
        if meta is not None:
            return meta
        node = self._node(path)
        if node is None:
            return ATOMIC
        list_type = node.get("x-kubernetes-list-type")
        if list_type == "set":
            return SET
        if list_type == "map":
            return _map(*[str(k) for k in node.get("x-kubernetes-list-map-keys") or []])
        return ATOMIC

    def atomic_map(self, path: FieldNames) -> bool:
        node = self._node(path)
        return node is not None and node.get("x-kubernetes-map-type") == "atomic"

    def smp_key(self, path: FieldNames) -> str | None:
        return None

    def smp_merges_primitives(self, path: FieldNames) -> bool:
        return False


def key_of(item: Any, rule: ListRule) -> tuple[tuple[str, Any], ...] | None:
    """The key of a map-list item, defaults filled in; None when a key field is missing."""
    if not isinstance(item, dict):
        return None
    key = []
    for name in rule.keys:
        if name in item:
            key.append((name, item[name]))
            continue
        default = next((value for field, value in rule.key_defaults if field == name), _NONE)
        if default is _NONE:
            return None
        key.append((name, default))
    return tuple(key)


_NONE: Any = object()  # no default for a key field (None itself could be one)
