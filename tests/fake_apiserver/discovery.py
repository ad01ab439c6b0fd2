"""Discovery documents: what clients read to learn which resources exist and how.

`/version`, `/api`, `/api/v1`, `/apis`, `/apis/<group>`, `/apis/<group>/<version>` in
the legacy (non-aggregated) JSON forms, which both kubectl and the Python client's
`DynamicClient` accept: names, singular names, kinds, `namespaced`, verbs, short
names, categories and `<resource>/status` subresources, CRDs included the moment they
are created. Plus a minimal OpenAPI v3 (`/openapi/v3` and one document per
group/version) holding, for each resource, the PATCH operation with its
`x-kubernetes-group-version-kind` and `fieldValidation` parameter: that is all
`kubectl apply` reads (to learn the server validates fields itself). `/openapi/v2` is
not served (404): kubectl only needs it for client-side validation, which it skips
when the server validates.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from tests.fake_apiserver.resources import SUBRESOURCE_VERBS, Registry, ResourceType

Json = dict[str, Any]

VERSION: Json = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0",
    "gitCommit": "70d3cc986aa8221cd1dfb1121852688902d3bf53",
    "gitTreeState": "clean",
    "buildDate": "2024-12-11T17:59:15Z",
    "goVersion": "go1.23.3",
    "compiler": "gc",
    "platform": "linux/amd64",
}


def version() -> Json:
    return dict(VERSION)


def api_versions(server_address: str) -> Json:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
        ],
    }


def _group(name: str, versions: list[str]) -> Json:
    entries = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": entries, "preferredVersion": entries[0]}


def api_group_list(registry: Registry) -> Json:
    groups = [_group(g, vs) for g, vs in registry.group_versions() if g]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(registry: Registry, name: str) -> Json | None:
    for group, versions in registry.group_versions():
        if group == name and group:
            return {"kind": "APIGroup", "apiVersion": "v1", **_group(group, versions)}
    return None


def _hash(rt: ResourceType) -> str:
    digest = hashlib.sha256(f"{rt.group}/{rt.version}/{rt.kind}".encode()).digest()
    return base64.b64encode(digest[:8]).decode()


def resource_list(registry: Registry, group: str, version: str) -> Json | None:
    types = registry.resources(group, version)
    if not types:
        return None
    resources: list[Json] = []
    for rt in types:
        entry: Json = {
            "name": rt.plural,
            "singularName": rt.singular,
            "namespaced": rt.namespaced,
            "kind": rt.kind,
            "verbs": list(rt.verbs),
        }
        if rt.short_names:
            entry["shortNames"] = list(rt.short_names)
        if rt.categories:
            entry["categories"] = list(rt.categories)
        entry["storageVersionHash"] = _hash(rt)
        resources.append(entry)
        for sub in rt.subresources:
            if sub == "status":
                resources.append(
                    {
                        "name": f"{rt.plural}/status",
                        "singularName": "",
                        "namespaced": rt.namespaced,
                        "kind": rt.kind,
                        "verbs": list(SUBRESOURCE_VERBS),
                    }
                )
            elif sub == "scale":
                resources.append(
                    {
                        "name": f"{rt.plural}/scale",
                        "singularName": "",
                        "namespaced": rt.namespaced,
                        "group": "autoscaling",
                        "version": "v1",
                        "kind": "Scale",
                        "verbs": list(SUBRESOURCE_VERBS),
                    }
                )
            elif sub == "log":
                resources.append(
                    {
                        "name": f"{rt.plural}/log",
                        "singularName": "",
                        "namespaced": rt.namespaced,
                        "kind": rt.kind,
                        "verbs": ["get"],
                    }
                )
            elif sub == "finalize":
                resources.append(
                    {
                        "name": f"{rt.plural}/finalize",
                        "singularName": "",
                        "namespaced": rt.namespaced,
                        "kind": rt.kind,
                        "verbs": ["update"],
                    }
                )
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": resources,
    }


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def openapi_v3_root(registry: Registry) -> Json:
    paths: Json = {}
    for group, versions in registry.group_versions():
        for v in versions:
            gv = _gv_path(group, v)
            digest = hashlib.sha256(
                repr([(rt.plural, rt.kind) for rt in registry.resources(group, v)]).encode()
            ).hexdigest()
            paths[gv] = {"serverRelativeURL": f"/openapi/v3/{gv}?hash={digest[:32].upper()}"}
    return {"paths": paths}


def openapi_v3_group_version(registry: Registry, group: str, version: str) -> Json | None:
    types = registry.resources(group, version)
    if not types:
        return None
    paths: Json = {}
    for rt in types:
        base = "/" + _gv_path(group, version)
        scope = f"{base}/namespaces/{{namespace}}" if rt.namespaced else base
        paths[f"{scope}/{rt.plural}/{{name}}"] = {
            "patch": {
                "operationId": f"patch{rt.kind}",
                "x-kubernetes-action": "patch",
                "x-kubernetes-group-version-kind": {
                    "group": rt.group,
                    "version": rt.version,
                    "kind": rt.kind,
                },
                "parameters": [
                    {"name": name, "in": "query", "schema": {"type": kind, "uniqueItems": True}}
                    for name, kind in (
                        ("dryRun", "string"),
                        ("fieldManager", "string"),
                        ("fieldValidation", "string"),
                        ("force", "boolean"),
                    )
                ],
                "responses": {"200": {"description": "OK"}, "201": {"description": "Created"}},
            }
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": VERSION["gitVersion"]},
        "paths": paths,
        "components": {"schemas": {}},
    }
