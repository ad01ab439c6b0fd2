"""Kubernetes' error vocabulary: every failure leaves the fake as a `kind: Status` body.

The official client and kubectl decide what to do from the HTTP code *and* the Status
`reason` / `details` (kubectl prints `message`; `kubernetes.client` keeps the body in
`ApiException.body`). So the messages are the real kube-apiserver's, word for word
where it matters (NotFound, AlreadyExists, Conflict, Forbidden on a terminating
namespace, Invalid with causes, apply conflicts).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

Json = dict[str, Any]

MODIFIED_MESSAGE = (
    "the object has been modified; please apply your changes to the latest version and try again"
)


class ApiError(Exception):
    """A request that fails with a Status body."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        details: Json | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = headers or {}

    def status(self) -> Json:
        body: Json = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        }
        if self.details is not None:
            body["details"] = self.details
        body["code"] = self.code
        return body


@dataclass(frozen=True)
class FieldError:
    """One `field.Error` of apimachinery: a cause of a 422 Invalid."""

    type: str  # Required | Invalid | Forbidden | NotSupported | Duplicate | NotFound
    field: str
    detail: str = ""
    value: Any = None
    has_value: bool = False

    @classmethod
    def invalid(cls, path: str, value: Any, detail: str) -> FieldError:
        return cls("Invalid", path, detail, value, True)

    @classmethod
    def required(cls, path: str, detail: str = "") -> FieldError:
        return cls("Required", path, detail)

    @classmethod
    def forbidden(cls, path: str, detail: str) -> FieldError:
        return cls("Forbidden", path, detail)

    def body(self) -> str:
        """The error without its field, as in a cause's `message`."""
        titles = {
            "Required": "Required value",
            "Invalid": "Invalid value",
            "Forbidden": "Forbidden",
            "NotSupported": "Unsupported value",
            "Duplicate": "Duplicate value",
            "NotFound": "Not found",
        }
        text = titles[self.type]
        if self.has_value:
            text += f": {_go_value(self.value)}"
        if self.detail:
            text += f": {self.detail}"
        return text

    def cause(self) -> Json:
        reasons = {
            "Required": "FieldValueRequired",
            "Invalid": "FieldValueInvalid",
            "Forbidden": "FieldValueForbidden",
            "NotSupported": "FieldValueNotSupported",
            "Duplicate": "FieldValueDuplicate",
            "NotFound": "FieldValueNotFound",
        }
        return {"reason": reasons[self.type], "message": self.body(), "field": self.field}


def _go_value(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, separators=(",", ":"))


def qualified(group: str, plural: str) -> str:
    """`deployments.apps`, or `configmaps` for the core group."""
    return f"{plural}.{group}" if group else plural


def _details(group: str, plural: str, name: str) -> Json:
    details: Json = {"name": name}
    if group:
        details["group"] = group
    details["kind"] = plural
    return details


def not_found(group: str, plural: str, name: str) -> ApiError:
    return ApiError(
        404,
        "NotFound",
        f'{qualified(group, plural)} "{name}" not found',
        _details(group, plural, name),
    )


def already_exists(group: str, plural: str, name: str) -> ApiError:
    return ApiError(
        409,
        "AlreadyExists",
        f'{qualified(group, plural)} "{name}" already exists',
        _details(group, plural, name),
    )


def conflict(group: str, plural: str, name: str, detail: str = MODIFIED_MESSAGE) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {qualified(group, plural)} "{name}": {detail}',
        _details(group, plural, name),
    )


def forbidden(
    group: str, plural: str, name: str, detail: str, causes: list[Json] | None = None
) -> ApiError:
    details = _details(group, plural, name)
    if causes:
        details["causes"] = causes
    subject = f'{qualified(group, plural)} "{name}"' if name else qualified(group, plural)
    return ApiError(403, "Forbidden", f"{subject} is forbidden: {detail}", details)


def namespace_terminating(group: str, plural: str, name: str, namespace: str) -> ApiError:
    return forbidden(
        group,
        plural,
        name,
        f"unable to create new content in namespace {namespace} because it is being terminated",
        [
            {
                "reason": "NamespaceTerminating",
                "message": f"namespace {namespace} is being terminated",
                "field": "metadata.namespace",
            }
        ],
    )


def invalid(group: str, kind: str, name: str, errors: list[FieldError]) -> ApiError:
    subject = f"{kind}.{group}" if group else kind
    rendered = [f"{e.field}: {e.body()}" for e in errors]
    text = rendered[0] if len(rendered) == 1 else "[" + ", ".join(rendered) + "]"
    details: Json = {"name": name} if name else {}
    if group:
        details["group"] = group
    details["kind"] = kind
    details["causes"] = [e.cause() for e in errors]
    return ApiError(422, "Invalid", f'{subject} "{name}" is invalid: {text}', details)


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def unsupported_media_type(content_type: str, accepted: list[str]) -> ApiError:
    return ApiError(
        415,
        "UnsupportedMediaType",
        f"the body of the request was in an unknown format - accepted media types include: "
        f"{', '.join(accepted)}",
    )


def not_acceptable(accept: str) -> ApiError:
    return ApiError(
        406,
        "NotAcceptable",
        f"only the following media types are accepted: application/json, application/yaml "
        f"(requested {accept})",
    )


def method_not_allowed(verb: str, group: str, plural: str) -> ApiError:
    return ApiError(
        405,
        "MethodNotAllowed",
        f"{verb} is not supported on resources of kind {qualified(group, plural)!r}",
    )


def expired(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


def internal_error(detail: str) -> ApiError:
    return ApiError(
        500,
        "InternalError",
        f"Internal error occurred: {detail}",
        {"causes": [{"message": detail}]},
    )


def too_many_requests(retry_after: int) -> ApiError:
    return ApiError(
        429,
        "TooManyRequests",
        "Too many requests, please try again later.",
        {"retryAfterSeconds": retry_after},
        {"Retry-After": str(retry_after)},
    )


def apply_conflict(conflicts: list[tuple[str, str]]) -> ApiError:
    """409 for server-side apply: `conflicts` are (printed manager, field path) pairs."""
    causes = [
        {"reason": "FieldManagerConflict", "message": f"conflict with {m}", "field": p}
        for m, p in conflicts
    ]
    if len(conflicts) == 1:
        manager, path = conflicts[0]
        message = f"Apply failed with 1 conflict: conflict with {manager}: {path}"
    else:
        by_manager: dict[str, list[str]] = {}
        for manager, path in conflicts:
            by_manager.setdefault(manager, []).append(path)
        lines: list[str] = []
        for manager in sorted(by_manager):
            lines.append(f"conflicts with {manager}:")
            lines.extend(f"- {p}" for p in by_manager[manager])
        message = f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)
    return ApiError(409, "Conflict", message, {"causes": causes})
