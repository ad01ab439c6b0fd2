"""Unknown fields in built-in objects: pruned with a warning, or refused.

A real server decodes a create / update / patch body into its Go types: a field the type
does not declare is dropped silently (`fieldValidation=Ignore`), dropped with a
`Warning` header per field (`Warn`, the default since 1.27), or refused with a 400
(`Strict`, what `kubectl apply` asks for). A server-side apply converts its body to a
typed object first, and that conversion refuses undeclared fields whatever
`fieldValidation` says. The official client's models declare the same fields
(`attribute_map`, `openapi_types`), so they serve as the schema here, for the kinds
Shipyard writes and reads.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from kubernetes.client import models

from tests.fake_apiserver import errors, warning_headers
from tests.fake_apiserver.resources import ResourceType

Json = dict[str, Any]
_CHECKED = frozenset(
    {
        "Deployment",
        "ReplicaSet",
        "Pod",
        "Service",
        "ConfigMap",
        "Secret",
        "Namespace",
        "Ingress",
        "NetworkPolicy",
        "ResourceQuota",
        "LimitRange",
        "ServiceAccount",
        "Lease",
    }
)
_SCALARS = frozenset({"object", "str", "int", "bool", "float", "datetime", "date", "bytearray"})


def enforce(rt: ResourceType, body: Any, query: Mapping[str, str], *, apply: bool) -> None:
    """Drop `body`'s undeclared fields in place (warning under `Warn`), or raise a 400:
    under `Strict`, and for an apply always."""
    if not rt.builtin or rt.kind not in _CHECKED or not isinstance(body, dict):
        return
    found: list[tuple[str, str]] = []  # (decoder path, structured-merge-diff path)
    _walk(f"V1{rt.kind}", body, "", "", found)
    if not found:
        return
    directive = query.get("fieldValidation", "").lower() or "warn"
    meta = body.get("metadata") or {}
    if apply:
        where = f"{meta.get('namespace', '')}/{meta.get('name', '')}".lstrip("/")
        details = "\n".join(f"{smd}: field not declared in schema" for _, smd in found)
        raise errors.bad_request(
            f"failed to create typed patch object ({where}; {rt.api_version}, "
            f"Kind={rt.kind}): {details}"
        )
    if directive == "warn":
        for path, _ in found:
            warning_headers.add(f'unknown field "{path}"')
    if directive != "strict":
        return  # pruned by _walk already
    unknown = ", ".join(f'unknown field "{path}"' for path, _ in found)
    raise errors.bad_request(f"strict decoding error: {unknown}")


def _walk(type_name: str, value: Any, path: str, smd: str, found: list[tuple[str, str]]) -> None:
    if type_name in _SCALARS or value is None:
        return
    if type_name.startswith("List[") and isinstance(value, list):
        inner = type_name[5:-1]
        for index, item in enumerate(value):
            key = (
                f'[name="{item["name"]}"]'
                if isinstance(item, dict) and isinstance(item.get("name"), str)
                else f"[{index}]"
            )
            _walk(inner, item, f"{path}[{index}]", smd + key, found)
        return
    if type_name.startswith("Dict[str, ") and isinstance(value, dict):
        inner = type_name[10:-1]
        for key, item in value.items():
            _walk(inner, item, f"{path}[{key}]", f"{smd}.{key}", found)
        return
    declared = _declared(type_name)
    if declared is None or not isinstance(value, dict):
        return
    for key in list(value):
        child = f"{path}.{key}" if path else key
        if key not in declared:
            found.append((child, f"{smd}.{key}"))
            del value[key]
            continue
        _walk(declared[key], value[key], child, f"{smd}.{key}", found)


@functools.lru_cache(maxsize=1024)
def _declared(type_name: str) -> dict[str, str] | None:
    """A model's fields by JSON name, each with its type's name; None for no model."""
    model = getattr(models, type_name, None)
    if model is None:
        return None
    return {
        json_name: model.openapi_types[python] for python, json_name in model.attribute_map.items()
    }
