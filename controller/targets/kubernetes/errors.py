"""The Kubernetes API's failures in the project's own terms.

Only `client` sees the official library's exceptions; everything above it catches these,
each raised `from` the original so the cause stays in the traceback.

    ApiError
    ├── NotFound        404
    ├── Conflict        409 (AlreadyExists, resourceVersion or field-manager conflicts)
    ├── Forbidden       403 (RBAC, a terminating namespace)
    ├── Invalid         400, 415, 422: the request itself is wrong
    ├── Expired         410: a watch's resourceVersion is too old; list again
    └── Transient       429, 5xx, timeouts, refused connections, after retries ran out
                        (also a `controller.errors.Transient`: the reconciler retries it)
"""

from __future__ import annotations

from controller import errors


class ApiError(errors.ShipyardError):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class NotFound(ApiError, errors.NotFound):
    pass


class Conflict(ApiError, errors.Conflict):
    pass


class Forbidden(ApiError):
    pass


class Invalid(ApiError):
    pass


class Expired(ApiError):
    pass


class Transient(ApiError, errors.Transient):
    pass


class UndeclaredCall(errors.ShipyardError):
    """The code made a call `permissions.REQUIRED` does not list: the RBAC would refuse it."""
