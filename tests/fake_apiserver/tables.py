"""Server-side printing: `meta.k8s.io/v1 Table` answers for kubectl.

kubectl asks for `Accept: application/json;as=Table;g=meta.k8s.io;v=v1` on `get` and
prints the server's columns verbatim, so a real server's columns are reproduced for
the kinds Shipyard makes (Deployment: NAME READY UP-TO-DATE AVAILABLE AGE; Namespace:
NAME STATUS AGE; Service, Ingress, ConfigMap, Secret, Lease, ...), "CREATED AT" for
kinds without printers (Roles, CRDs), and `additionalPrinterColumns` for custom
resources. Rows carry PartialObjectMetadata (or the object with
`includeObject=Object`) so `-A` can show namespaces. Also the PartialObjectMetadata
forms kubectl asks for in a few places.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from tests.fake_apiserver.resources import ResourceType
from tests.fake_apiserver.selectors import selector_string

Json = dict[str, Any]

_NAME_DESCRIPTION = (
    "Name must be unique within a namespace. Is required when creating resources, although "
    "some resources may allow a client to request the generation of an appropriate name "
    "automatically. Name is primarily intended for creation idempotence and configuration "
    "definition. Cannot be updated. More info: "
    "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
)
_AGE_DESCRIPTION = (
    "CreationTimestamp is a timestamp representing the server time when this object was "
    "created. It is not guaranteed to be set in happens-before order across separate "
    "operations. Clients may not set this value. It is represented in RFC3339 form and is "
    "in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/"
    "api-conventions.md#metadata"
)


def _col(
    name: str, kind: str = "string", priority: int = 0, fmt: str = "", description: str = ""
) -> Json:
    return {
        "name": name,
        "type": kind,
        "format": fmt,
        "description": description or name,
        "priority": priority,
    }


NAME = _col("Name", fmt="name", description=_NAME_DESCRIPTION)
AGE = _col("Age", description=_AGE_DESCRIPTION)
CREATED_AT = _col("Created At", "date", description=_AGE_DESCRIPTION)


def human_duration(seconds: float) -> str:
    """apimachinery's `duration.HumanDuration` (kubectl's AGE column)."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        rest = s % 60
        return f"{minutes}m" if rest == 0 else f"{minutes}m{rest}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h" if rest == 0 else f"{hours}h{rest}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d" if rest == 0 else f"{hours // 24}d{rest}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        rest = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if rest == 0 else f"{hours // 24 // 365}y{rest}d"
    return f"{hours // 24 // 365}y"


def _age(obj: Json) -> str:
    stamp = (obj.get("metadata") or {}).get("creationTimestamp")
    if not stamp:
        return "<unknown>"
    created = datetime.strptime(str(stamp), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return human_duration((datetime.now(UTC) - created).total_seconds())


def _selector_text(selector: Json | None) -> str:
    return selector_string(selector) or "<none>"


def _containers(spec: Json) -> tuple[str, str]:
    containers = spec.get("containers") or []
    return (
        ",".join(str(c.get("name", "")) for c in containers),
        ",".join(str(c.get("image", "")) for c in containers),
    )


def _deployment(o: Json) -> list[Any]:
    spec, status = o.get("spec") or {}, o.get("status") or {}
    names, images = _containers((spec.get("template") or {}).get("spec") or {})
    return [
        f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 0)}",
        status.get("updatedReplicas", 0),
        status.get("availableReplicas", 0),
        _age(o),
        names,
        images,
        _selector_text(spec.get("selector")),
    ]


def _replicaset(o: Json) -> list[Any]:
    spec, status = o.get("spec") or {}, o.get("status") or {}
    names, images = _containers((spec.get("template") or {}).get("spec") or {})
    return [
        spec.get("replicas", 0),
        status.get("replicas", 0),
        status.get("readyReplicas", 0),
        _age(o),
        names,
        images,
        _selector_text(spec.get("selector")),
    ]


def _service(o: Json) -> list[Any]:
    spec = o.get("spec") or {}
    ports = ",".join(f"{p.get('port')}/{p.get('protocol', 'TCP')}" for p in spec.get("ports") or [])
    ingress = ((o.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    external = ",".join(str(i.get("ip") or i.get("hostname")) for i in ingress)
    if not external:
        external = str(spec.get("externalName") or "<none>")
    selector = spec.get("selector") or {}
    return [
        spec.get("type", "ClusterIP"),
        spec.get("clusterIP", "<none>"),
        external,
        ports or "<none>",
        _age(o),
        ",".join(f"{k}={v}" for k, v in sorted(selector.items())) or "<none>",
    ]


def _ingress(o: Json) -> list[Any]:
    spec = o.get("spec") or {}
    hosts = ",".join(str(r.get("host")) for r in spec.get("rules") or [] if r.get("host")) or "*"
    ingress = ((o.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    address = ",".join(str(i.get("ip") or i.get("hostname")) for i in ingress)
    return [
        spec.get("ingressClassName") or "<none>",
        hosts,
        address,
        "80, 443" if spec.get("tls") else "80",
        _age(o),
    ]


def _pod(o: Json) -> list[Any]:
    containers = (o.get("spec") or {}).get("containers") or []
    statuses = (o.get("status") or {}).get("containerStatuses") or []
    ready = sum(1 for s in statuses if s.get("ready"))
    # As the server's printer does: a container's waiting or terminated reason wins
    # over the phase (CrashLoopBackOff, ImagePullBackOff…).
    status = (o.get("status") or {}).get("phase", "Pending")
    for container in statuses:
        state = container.get("state") or {}
        reason = (state.get("waiting") or state.get("terminated") or {}).get("reason")
        if reason:
            status = reason
    return [
        f"{ready}/{len(containers)}",
        status,
        sum(int(c.get("restartCount") or 0) for c in statuses),
        _age(o),
    ]


_PRINTERS: dict[str, tuple[list[Json], Any]] = {
    "Deployment": (
        [
            _col("Ready"),
            _col("Up-to-date", "integer"),
            _col("Available", "integer"),
            AGE,
            _col("Containers", priority=1),
            _col("Images", priority=1),
            _col("Selector", priority=1),
        ],
        _deployment,
    ),
    "ReplicaSet": (
        [
            _col("Desired", "integer"),
            _col("Current", "integer"),
            _col("Ready", "integer"),
            AGE,
            _col("Containers", priority=1),
            _col("Images", priority=1),
            _col("Selector", priority=1),
        ],
        _replicaset,
    ),
    "Namespace": (
        [_col("Status"), AGE],
        lambda o: [(o.get("status") or {}).get("phase", "Active"), _age(o)],
    ),
    "ConfigMap": (
        [_col("Data", "integer"), AGE],
        lambda o: [len(o.get("data") or {}) + len(o.get("binaryData") or {}), _age(o)],
    ),
    "Secret": (
        [_col("Type"), _col("Data", "integer"), AGE],
        lambda o: [o.get("type", "Opaque"), len(o.get("data") or {}), _age(o)],
    ),
    "Service": (
        [
            _col("Type"),
            _col("Cluster-IP"),
            _col("External-IP"),
            _col("Port(s)"),
            AGE,
            _col("Selector", priority=1),
        ],
        _service,
    ),
    "Ingress": ([_col("Class"), _col("Hosts"), _col("Address"), _col("Ports"), AGE], _ingress),
    "Lease": (
        [_col("Holder"), AGE],
        lambda o: [(o.get("spec") or {}).get("holderIdentity", ""), _age(o)],
    ),
    "ServiceAccount": (
        [_col("Secrets", "integer"), AGE],
        lambda o: [len(o.get("secrets") or []), _age(o)],
    ),
    "Pod": ([_col("Ready"), _col("Status"), _col("Restarts", "integer"), AGE], _pod),
    "NetworkPolicy": (
        [_col("Pod-Selector"), AGE],
        lambda o: [
            _selector_text((o.get("spec") or {}).get("podSelector")).replace("<none>", ""),
            _age(o),
        ],
    ),
    "RoleBinding": (
        [_col("Role"), AGE],
        lambda o: [
            f"{(o.get('roleRef') or {}).get('kind')}/{(o.get('roleRef') or {}).get('name')}",
            _age(o),
        ],
    ),
    "ClusterRoleBinding": (
        [_col("Role"), AGE],
        lambda o: [
            f"{(o.get('roleRef') or {}).get('kind')}/{(o.get('roleRef') or {}).get('name')}",
            _age(o),
        ],
    ),
    "ResourceQuota": ([AGE], lambda o: [_age(o)]),
}


def _jsonpath(obj: Any, path: str) -> Any:
    """The small JSONPath subset printer columns use: `.a.b`, `[0]`, `[?(@.k=="v")]`."""
    node = obj
    for part in re.findall(r"\.([^.\[]+)|\[(\d+)\]|\[\?\(@\.(\w+)==\"([^\"]*)\"\)\]", path):
        field, idx, key, value = part
        if field:
            node = node.get(field) if isinstance(node, dict) else None
        elif idx:
            node = node[int(idx)] if isinstance(node, list) and int(idx) < len(node) else None
        else:
            node = (
                next((i for i in node if isinstance(i, dict) and i.get(key) == value), None)
                if isinstance(node, list)
                else None
            )
        if node is None:
            return None
    return node


def columns_and_cells(rt: ResourceType, obj: Json) -> tuple[list[Json], list[Any]]:
    name = (obj.get("metadata") or {}).get("name", "")
    if not rt.builtin:
        if not rt.printer_columns:
            return [NAME, AGE], [name, _age(obj)]
        cols, cells = [NAME], [name]
        for c in rt.printer_columns:
            cols.append(_col(c.name, c.type, c.priority, c.format, c.description))
            value = _jsonpath(obj, c.json_path)
            if c.json_path == ".metadata.creationTimestamp" or (c.type == "date" and value):
                value = _age(obj)
            cells.append(value if value is not None else "<none>")
        return cols, cells
    printer = _PRINTERS.get(rt.kind)
    if printer is None:
        return [NAME, CREATED_AT], [name, (obj.get("metadata") or {}).get("creationTimestamp")]
    columns, cells_of = printer
    return [NAME, *columns], [name, *cells_of(obj)]


def partial(obj: Json) -> Json:
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata") or {},
    }


def _row_object(rt: ResourceType, obj: Json, include: str) -> Json | None:
    if include == "None":
        return None
    if include == "Object":
        return {"kind": rt.kind, "apiVersion": rt.api_version, **obj}
    return partial(obj)


def table(
    rt: ResourceType, objects: list[Json], list_meta: Json, include: str, with_columns: bool = True
) -> Json:
    columns = columns_and_cells(rt, {"metadata": {}})[0]
    rows = []
    for obj in objects:
        cols, cells = columns_and_cells(rt, obj)
        columns = cols
        row: Json = {"cells": cells}
        row_obj = _row_object(rt, obj, include)
        if row_obj is not None:
            row["object"] = row_obj
        rows.append(row)
    out: Json = {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta}
    if with_columns:
        out["columnDefinitions"] = columns
    out["rows"] = rows
    return out


def partial_list(objects: list[Json], list_meta: Json) -> Json:
    return {
        "kind": "PartialObjectMetadataList",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "items": [partial(o) for o in objects],
    }
