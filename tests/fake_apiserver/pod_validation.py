"""apimachinery's checks of a pod spec's containers beyond names and images.

Each written from `k8s.io/kubernetes/pkg/apis/core/validation` (1.32), with its message:
port names (IANA service names, at most 15 characters, unique per container), env
entries (names printable ASCII without '=', `value` and `valueFrom` not both), probes
(exactly one handler), volume mounts of declared volumes only, and images without
surrounding whitespace.
"""

from __future__ import annotations

import re
from typing import Any

from tests.fake_apiserver.errors import FieldError

Json = dict[str, Any]
_PORT_NAME_CHARS = re.compile(r"^[-a-z0-9]+$")
_HAS_LETTER = re.compile(r"[a-z]")
_HANDLERS = ("exec", "httpGet", "tcpSocket", "grpc")
ENV_NAME_MESSAGE = (
    "a valid environment variable name must consist only of printable ASCII characters "
    "other than '='"
)


def container(spec: Json, item: Json, where: str) -> list[FieldError]:
    """Every problem of one container (`item`) of pod spec `spec`."""
    problems: list[FieldError] = []
    image = item.get("image")
    if isinstance(image, str) and image and image != image.strip():
        problems.append(
            FieldError.invalid(
                f"{where}.image", image, "must not have leading or trailing whitespace"
            )
        )
    problems += _ports(item, where)
    problems += _env(item, where)
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        if item.get(probe) is not None:
            problems += _probe(item[probe] or {}, f"{where}.{probe}")
    declared = {str((volume or {}).get("name")) for volume in spec.get("volumes") or []}
    for index, mount in enumerate(item.get("volumeMounts") or []):
        name = str((mount or {}).get("name", ""))
        if not name:
            problems.append(FieldError.required(f"{where}.volumeMounts[{index}].name"))
        elif name not in declared:
            problems.append(
                FieldError("NotFound", f"{where}.volumeMounts[{index}].name", "", name, True)
            )
    return problems


def port_name_errors(name: str) -> list[str]:
    """`IsValidPortName`: an IANA_SVC_NAME."""
    found = []
    if len(name) > 15:
        found.append("must be no more than 15 characters")
    if not _PORT_NAME_CHARS.match(name):
        found.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if "--" in name:
        found.append("must not contain consecutive hyphens")
    if not _HAS_LETTER.search(name):
        found.append("must contain at least one letter (a-z)")
    if name.startswith("-") or name.endswith("-"):
        found.append("must not begin or end with a hyphen")
    return found


def _ports(item: Json, where: str) -> list[FieldError]:
    problems: list[FieldError] = []
    seen: set[str] = set()
    for index, port in enumerate(item.get("ports") or []):
        name = (port or {}).get("name")
        if not name:
            continue
        path = f"{where}.ports[{index}].name"
        for message in port_name_errors(str(name)):
            problems.append(FieldError.invalid(path, name, message))
        if name in seen:
            problems.append(FieldError("Duplicate", path, "", name, True))
        seen.add(str(name))
    return problems


def _env(item: Json, where: str) -> list[FieldError]:
    problems: list[FieldError] = []
    for index, entry in enumerate(item.get("env") or []):
        variable: Json = entry or {}
        path = f"{where}.env[{index}]"
        name = variable.get("name")
        if not name:
            problems.append(FieldError.required(f"{path}.name"))
        elif "=" in str(name) or not all(32 <= ord(c) < 127 for c in str(name)):
            problems.append(FieldError.invalid(f"{path}.name", name, ENV_NAME_MESSAGE))
        if variable.get("value") and variable.get("valueFrom") is not None:
            problems.append(
                FieldError.invalid(
                    f"{path}.valueFrom", "", "may not be specified when `value` is not empty"
                )
            )
    return problems


def _probe(probe: Json, path: str) -> list[FieldError]:
    handlers = [handler for handler in _HANDLERS if probe.get(handler) is not None]
    if not handlers:
        return [FieldError.required(path, "must specify a handler type")]
    if len(handlers) > 1:
        return [
            FieldError.forbidden(
                f"{path}.{handlers[1]}", "may not specify more than 1 handler type"
            )
        ]
    return []


def strategy(spec: Json) -> list[FieldError]:
    """A rolling update must be able to move: maxSurge and maxUnavailable not both 0."""
    rolling = ((spec.get("strategy") or {}).get("rollingUpdate")) or {}
    surge, unavailable = rolling.get("maxSurge"), rolling.get("maxUnavailable")
    if _is_zero(surge) and _is_zero(unavailable):
        return [
            FieldError.invalid(
                "spec.strategy.rollingUpdate.maxUnavailable",
                unavailable,
                "may not be 0 when `maxSurge` is 0",
            )
        ]
    return []


def _is_zero(value: Any) -> bool:
    return value in (0, "0", "0%")
