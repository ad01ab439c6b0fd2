"""The validation a real API server does before storing, as 422 Invalid with causes.

Only what code under test can plausibly get wrong: names (DNS subdomain, DNS label,
DNS-1035 label for Services, path segments for RBAC), labels and annotations,
owner references, Deployment selector vs template labels and its immutability,
containers' names and images, Service ports, ConfigMap / Secret keys and
`immutable`, Ingress `pathType`, CRD naming. A Secret's `data` that is not base64 is a
400, because a real server fails to decode it before validation.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from tests.fake_apiserver import errors, pod_validation, quantities
from tests.fake_apiserver.errors import FieldError
from tests.fake_apiserver.resources import ResourceType
from tests.fake_apiserver.selectors import (
    label_key_error,
    label_value_error,
    selector_from_match,
)

Json = dict[str, Any]

_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")

SUBDOMAIN_MESSAGE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' "
    "or '.', and must start and end with an alphanumeric character (e.g. 'example.com', "
    "regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL_MESSAGE = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', "
    "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
DNS1035_MESSAGE = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with "
    "an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or "
    "'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)


def name_error(kind: str, name: str) -> str | None:
    """Why `name` is not a valid name for `kind`, or None."""
    if kind in ("Namespace",):
        return (
            None
            if _LABEL.match(name) and len(name) <= 63
            else (LABEL_MESSAGE if len(name) <= 63 else "must be no more than 63 characters")
        )
    if kind == "Service":
        return (
            None
            if _DNS1035.match(name) and len(name) <= 63
            else (DNS1035_MESSAGE if len(name) <= 63 else "must be no more than 63 characters")
        )
    if kind in ("Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"):
        if name in (".", ".."):
            return f"may not be '{name}'"
        for bad in ("/", "%"):
            if bad in name:
                return f"may not contain '{bad}'"
        return None
    if len(name) > 253:
        return "must be no more than 253 characters"
    return None if _SUBDOMAIN.match(name) else SUBDOMAIN_MESSAGE


def check_secret_data(obj: Json) -> None:
    for key, value in (obj.get("data") or {}).items():
        try:
            base64.b64decode(str(value), validate=True)
        except (binascii.Error, ValueError):
            raise errors.bad_request(
                f'Secret in version "v1" cannot be handled as a Secret: illegal base64 data '
                f"at input byte 0 (key {key})"
            ) from None


def validate(rt: ResourceType, obj: Json, old: Json | None) -> None:
    """Raise 422 Invalid listing every problem found (400 for what would not decode)."""
    _check_decodable(rt, obj)
    problems = _metadata(rt, obj)
    checker = _KIND_CHECKS.get(rt.kind)
    if checker is not None:
        problems.extend(checker(obj, old))
    if problems:
        raise errors.invalid(rt.group, rt.kind, str(obj["metadata"].get("name", "")), problems)


def _pod_spec_of(rt: ResourceType, obj: Json) -> Json | None:
    spec = obj.get("spec") or {}
    if rt.kind == "Pod":
        return spec
    if rt.kind in ("Deployment", "ReplicaSet"):
        return (spec.get("template") or {}).get("spec") or {}
    return None


def _check_decodable(rt: ResourceType, obj: Json) -> None:
    """Quantities are parsed while decoding: a malformed one is a 400, not a 422."""
    pod_spec = _pod_spec_of(rt, obj)
    if pod_spec is None:
        return
    for container in pod_spec.get("containers") or []:
        resources = (container or {}).get("resources") or {}
        for section in ("requests", "limits"):
            for value in (resources.get(section) or {}).values():
                if quantities.parse(value) is None:
                    raise errors.bad_request(
                        f'{rt.kind} in version "{rt.version}" cannot be handled as a '
                        f"{rt.kind}: quantities must match the regular expression "
                        f"'{quantities.EXPRESSION}'"
                    )


def _resources(container: Json, where: str) -> list[FieldError]:
    """Non-negative quantities, and no request above its limit (ValidateResourceRequirements)."""
    problems: list[FieldError] = []
    resources = container.get("resources") or {}
    requests = resources.get("requests") or {}
    limits = resources.get("limits") or {}
    for section, values in (("requests", requests), ("limits", limits)):
        for name, value in values.items():
            parsed = quantities.parse(value)
            if parsed is not None and parsed < 0:
                problems.append(
                    FieldError.invalid(
                        f"{where}.resources.{section}[{name}]",
                        str(value),
                        "must be greater than or equal to 0",
                    )
                )
    for name, value in requests.items():
        if name not in limits:
            continue
        requested, limit = quantities.parse(value), quantities.parse(limits[name])
        if requested is not None and limit is not None and requested > limit:
            problems.append(
                FieldError.invalid(
                    f"{where}.resources.requests[{name}]",
                    str(value),
                    f"must be less than or equal to {name} limit of {limits[name]}",
                )
            )
    return problems


def _metadata(rt: ResourceType, obj: Json) -> list[FieldError]:
    meta = obj.get("metadata") or {}
    problems: list[FieldError] = []
    name = meta.get("name")
    if not name:
        problems.append(FieldError.required("metadata.name", "name or generateName is required"))
    else:
        problem = name_error(rt.kind, str(name))
        if problem:
            problems.append(FieldError.invalid("metadata.name", name, problem))
    for key, value in (meta.get("labels") or {}).items():
        problem = label_key_error(str(key))
        if problem:
            problems.append(FieldError.invalid("metadata.labels", key, problem))
        if not isinstance(value, str):
            problems.append(
                FieldError.invalid(f"metadata.labels[{key}]", value, "must be a string")
            )
            continue
        problem = label_value_error(value)
        if problem:
            problems.append(FieldError.invalid("metadata.labels", value, problem))
    annotations = meta.get("annotations") or {}
    for key, value in annotations.items():
        problem = label_key_error(str(key).lower())
        if problem:
            problems.append(FieldError.invalid("metadata.annotations", key, problem))
        if not isinstance(value, str):
            problems.append(
                FieldError.invalid(f"metadata.annotations[{key}]", value, "must be a string")
            )
    size = sum(len(str(k)) + len(str(v)) for k, v in annotations.items())
    if size > 256 * 1024:
        problems.append(
            FieldError("TooLong", "metadata.annotations", "must have at most 262144 bytes")
        )
    for i, ref in enumerate(meta.get("ownerReferences") or []):
        for required in ("apiVersion", "kind", "name", "uid"):
            if not (ref or {}).get(required):
                problems.append(FieldError.required(f"metadata.ownerReferences[{i}].{required}"))
    return problems


def _containers(spec: Json, prefix: str) -> list[FieldError]:
    problems: list[FieldError] = []
    containers = spec.get("containers")
    if not containers:
        problems.append(FieldError.required(f"{prefix}.containers"))
        return problems
    seen: set[str] = set()
    for i, container in enumerate(containers):
        where = f"{prefix}.containers[{i}]"
        name = str((container or {}).get("name", ""))
        if not name:
            problems.append(FieldError.required(f"{where}.name"))
        elif not _LABEL.match(name):
            problems.append(FieldError.invalid(f"{where}.name", name, LABEL_MESSAGE))
        elif name in seen:
            problems.append(FieldError("Duplicate", f"{where}.name", "", name, True))
        seen.add(name)
        if not (container or {}).get("image"):
            problems.append(FieldError.required(f"{where}.image"))
        problems.extend(_resources(container or {}, where))
        problems.extend(pod_validation.container(spec, container or {}, where))
        for j, port in enumerate((container or {}).get("ports") or []):
            number = (port or {}).get("containerPort")
            if not isinstance(number, int) or not 0 < number < 65536:
                problems.append(
                    FieldError.invalid(
                        f"{where}.ports[{j}].containerPort",
                        number,
                        "must be between 1 and 65535, inclusive",
                    )
                )
    return problems


def _workload(obj: Json, old: Json | None) -> list[FieldError]:
    spec = obj.get("spec") or {}
    problems: list[FieldError] = []
    selector = spec.get("selector")
    template = spec.get("template") or {}
    labels = (template.get("metadata") or {}).get("labels") or {}
    if not selector:
        problems.append(FieldError.required("spec.selector"))
    elif not (selector.get("matchLabels") or selector.get("matchExpressions")):
        problems.append(
            FieldError.invalid(
                "spec.selector", selector, "empty selector is invalid for deployment"
            )
        )
    elif not selector_from_match(selector).matches({"metadata": {"labels": labels}}):
        problems.append(
            FieldError.invalid(
                "spec.template.metadata.labels",
                labels,
                "`selector` does not match template `labels`",
            )
        )
    replicas = spec.get("replicas", 1)
    if not isinstance(replicas, int) or replicas < 0:
        problems.append(
            FieldError.invalid("spec.replicas", replicas, "must be greater than or equal to 0")
        )
    pod_spec = template.get("spec") or {}
    problems.extend(_containers(pod_spec, "spec.template.spec"))
    if obj.get("kind", "Deployment") == "Deployment":
        problems.extend(pod_validation.strategy(spec))
    restart = pod_spec.get("restartPolicy", "Always")
    if restart != "Always":
        problems.append(
            FieldError(
                "NotSupported",
                "spec.template.spec.restartPolicy",
                'supported values: "Always"',
                restart,
                True,
            )
        )
    if old is not None and selector and (old.get("spec") or {}).get("selector") != selector:
        problems.append(FieldError.invalid("spec.selector", selector, "field is immutable"))
    return problems


def _pod(obj: Json, old: Json | None) -> list[FieldError]:
    return _containers(obj.get("spec") or {}, "spec")


def _service(obj: Json, old: Json | None) -> list[FieldError]:
    spec = obj.get("spec") or {}
    problems: list[FieldError] = []
    kind = spec.get("type", "ClusterIP")
    if kind not in ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName"):
        problems.append(
            FieldError(
                "NotSupported",
                "spec.type",
                'supported values: "ClusterIP", "ExternalName", "LoadBalancer", "NodePort"',
                kind,
                True,
            )
        )
    ports = spec.get("ports") or []
    if not ports and kind != "ExternalName" and spec.get("clusterIP") != "None":
        problems.append(FieldError.required("spec.ports"))
    for i, port in enumerate(ports):
        number = (port or {}).get("port")
        if not isinstance(number, int) or not 0 < number < 65536:
            problems.append(
                FieldError.invalid(
                    f"spec.ports[{i}].port", number, "must be between 1 and 65535, inclusive"
                )
            )
        if len(ports) > 1 and not (port or {}).get("name"):
            problems.append(FieldError.required(f"spec.ports[{i}].name"))
    old_ip = ((old or {}).get("spec") or {}).get("clusterIP")
    if old_ip and spec.get("clusterIP") and spec["clusterIP"] != old_ip:
        problems.append(
            FieldError.invalid("spec.clusterIPs[0]", spec["clusterIP"], "may not change once set")
        )
    return problems


def _keys(obj: Json, old: Json | None) -> list[FieldError]:
    problems: list[FieldError] = []
    for section in ("data", "binaryData"):
        for key in obj.get(section) or {}:
            if not _CONFIG_KEY.match(str(key)) or len(str(key)) > 253:
                problems.append(
                    FieldError.invalid(
                        f"{section}[{key}]",
                        key,
                        "a valid config key must consist of alphanumeric characters, '-', '_' "
                        "or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used "
                        "for validation is '[-._a-zA-Z0-9]+')",
                    )
                )
    if old is not None and old.get("immutable"):
        for section in ("data", "binaryData", "type"):
            if obj.get(section) != old.get(section):
                problems.append(
                    FieldError.forbidden(section, "field is immutable when `immutable` is set")
                )
        if not obj.get("immutable"):
            problems.append(
                FieldError.forbidden("immutable", "field is immutable when `immutable` is set")
            )
    return problems


def _ingress(obj: Json, old: Json | None) -> list[FieldError]:
    problems: list[FieldError] = []
    for i, rule in enumerate((obj.get("spec") or {}).get("rules") or []):
        host = (rule or {}).get("host")
        if host and not _SUBDOMAIN.match(str(host).removeprefix("*.")):
            problems.append(FieldError.invalid(f"spec.rules[{i}].host", host, SUBDOMAIN_MESSAGE))
        for j, path in enumerate(((rule or {}).get("http") or {}).get("paths") or []):
            where = f"spec.rules[{i}].http.paths[{j}]"
            if not (path or {}).get("pathType"):
                problems.append(
                    FieldError.required(f"{where}.pathType", "pathType must be specified")
                )
            if not (path or {}).get("backend"):
                problems.append(FieldError.required(f"{where}.backend"))
    return problems


def _crd(obj: Json, old: Json | None) -> list[FieldError]:
    spec = obj.get("spec") or {}
    names = spec.get("names") or {}
    group = str(spec.get("group", ""))
    problems: list[FieldError] = []
    if not group:
        problems.append(FieldError.required("spec.group"))
    elif "." not in group:
        problems.append(
            FieldError.invalid("spec.group", group, "should be a domain with at least one dot")
        )
    for required in ("plural", "kind"):
        if not names.get(required):
            problems.append(FieldError.required(f"spec.names.{required}"))
    expected = f"{names.get('plural', '')}.{group}"
    if obj["metadata"].get("name") != expected:
        problems.append(
            FieldError.invalid(
                "metadata.name",
                obj["metadata"].get("name"),
                'must be spec.names.plural+"."+spec.group',
            )
        )
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        problems.append(
            FieldError(
                "NotSupported",
                "spec.scope",
                'supported values: "Cluster", "Namespaced"',
                spec.get("scope"),
                True,
            )
        )
    versions = spec.get("versions") or []
    if not versions:
        problems.append(
            FieldError.required(
                "spec.versions", "must have exactly one version marked as storage version"
            )
        )
    elif sum(1 for v in versions if v.get("storage")) != 1:
        problems.append(
            FieldError.invalid(
                "spec.versions", versions, "must have exactly one version marked as storage version"
            )
        )
    return problems


def _event(obj: Json, old: Json | None) -> list[FieldError]:
    involved = obj.get("involvedObject") or {}
    namespace = obj["metadata"].get("namespace", "")
    problems: list[FieldError] = []
    if involved.get("namespace") and involved["namespace"] != namespace:
        problems.append(
            FieldError.invalid(
                "involvedObject.namespace", involved["namespace"], "does not match event.namespace"
            )
        )
    if obj.get("type") and obj["type"] not in ("Normal", "Warning"):
        problems.append(
            FieldError(
                "NotSupported", "type", 'supported values: "Normal", "Warning"', obj["type"], True
            )
        )
    return problems


_KIND_CHECKS = {
    "Event": _event,
    "Deployment": _workload,
    "ReplicaSet": _workload,
    "Pod": _pod,
    "Service": _service,
    "ConfigMap": _keys,
    "Secret": _keys,
    "Ingress": _ingress,
    "CustomResourceDefinition": _crd,
}
