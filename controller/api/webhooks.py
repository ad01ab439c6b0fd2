"""Webhook receivers: GitHub, GitLab and Gitea/Forgejo deliveries become targeted syncs.

A delivery is refused as early as possible and costs little until it is authenticated
(`webhook_intake`): the secret, the declared size and the signature or token header are
checked before any of the body is read; GitHub and Gitea signatures are computed as the
body streams in. An authentic delivery is parsed defensively (`payload_fields`), must
be about the served repository (`webhook_binding`), is recognized when replayed, and is
answered quickly: the work is queued on the controller, which coalesces bursts.

Status codes: 200 processed (or a replay, said so), 202 accepted but nothing to do (an
event Shipyard does not use, another repository), 400 unusable payload, 401 missing or
wrong signature, 403 no secret configured, 408 body too slow, 413 body too large,
503 busy or the state directory cannot be written (with Retry-After).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from controller.api import webhook_binding
from controller.api.payload_fields import Fields, Malformed, parse
from controller.api.webhook_binding import ServedRepositories
from controller.api.webhook_intake import (
    Admission,
    ClientGone,
    IntakeLimits,
    RefusalLog,
    Refused,
)
from controller.store.errors import StoreUnwritable

STORE_RETRY_AFTER = 30
_ZERO_SHA = "0" * 40

log = logging.getLogger("shipyard.webhooks")


class WebhookSink(Protocol):
    """What deliveries turn into; the controller implements it."""

    def branch_pushed(self, branch: str, sha: str | None) -> None: ...

    def branch_deleted(self, branch: str) -> None: ...

    def pull_request(
        self,
        provider: str,
        branch: str,
        number: int,
        *,
        from_fork: bool,
        labels: tuple[str, ...],
    ) -> None:
        """Note a pull or merge request; only the notifier of `provider`'s forge files it."""
        ...

    def delivery_seen(self, provider: str, delivery: str) -> bool:
        """Record `delivery`; True when it was recorded before (a replay).

        Raises `StoreUnwritable` when the record cannot be written.
        """
        ...

    def delivery_counted(self, provider: str, result: str) -> None: ...


@dataclass(frozen=True)
class WebhookSettings:
    secret: str | None
    limits: IntakeLimits = field(default_factory=IntakeLimits)
    served: ServedRepositories = field(default_factory=ServedRepositories)


Outcome = tuple[int, str]
Handler = Callable[[str, Mapping[str, str], Fields, WebhookSink], Outcome]


def install(app: FastAPI, settings: WebhookSettings, sink: WebhookSink) -> None:
    """Add the receivers to `app`, with a gate that turns away deliveries while every
    place is taken before FastAPI routes them (a refusal then costs a fraction)."""
    receiver = _Receiver(settings, sink)
    app.include_router(_create_router(receiver))
    app.add_middleware(_BusyGate, receiver=receiver)


_PROVIDERS = frozenset({"github", "gitlab", "gitea"})


class _BusyGate:
    def __init__(self, app: ASGIApp, receiver: _Receiver) -> None:
        self.app = app
        self.receiver = receiver

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and self.receiver.admission.saturated()
        ):
            provider = scope["path"].removeprefix("/hooks/")
            if provider in _PROVIDERS and scope["path"].startswith("/hooks/"):
                client = scope.get("client")
                response = self.receiver.refusal(
                    provider, client[0] if client else "unknown", self.receiver.admission.busy()
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _create_router(receiver: _Receiver) -> APIRouter:
    router = APIRouter(prefix="/hooks", tags=["webhooks"])

    @router.post("/github", summary="GitHub webhook (push, pull_request, delete, ping)")
    async def github(request: Request) -> JSONResponse:
        return await receiver.receive("github", request, _github)

    @router.post("/gitlab", summary="GitLab webhook (push and merge request hooks)")
    async def gitlab(request: Request) -> JSONResponse:
        return await receiver.receive("gitlab", request, _gitlab)

    @router.post("/gitea", summary="Gitea / Forgejo webhook (push, delete, pull_request)")
    async def gitea(request: Request) -> JSONResponse:
        return await receiver.receive("gitea", request, _gitea)

    return router


class _Receiver:
    def __init__(self, settings: WebhookSettings, sink: WebhookSink) -> None:
        self.settings = settings
        self.sink = sink
        self.admission = Admission(settings.limits)
        self.refusals = RefusalLog(log)

    async def receive(self, provider: str, request: Request, handle: Handler) -> JSONResponse:
        try:
            status, message, result = await self._process(provider, request, handle)
        except Refused as refusal:
            return self.refusal(provider, _client(request), refusal)
        except ClientGone:
            self.sink.delivery_counted(provider, "aborted")
            self.refusals.refused(provider, _client(request), 400, "disconnected mid-upload")
            return JSONResponse({"error": "client disconnected"}, 400, {"connection": "close"})
        self.sink.delivery_counted(provider, result)
        return JSONResponse({"status": message}, status_code=status)

    async def _process(
        self, provider: str, request: Request, handle: Handler
    ) -> tuple[int, str, str]:
        secret = self.settings.secret
        if not secret:
            raise Refused(
                403, "webhooks are disabled: start Shipyard with --webhook-secret", "disabled"
            )
        headers = request.headers
        declared = _declared_length(headers.get("content-length"), self.settings.limits.max_body)
        check = _authenticator(provider, headers, secret)  # header checks: nothing read yet
        pending = self.admission.admit(declared)
        try:
            body = await pending.read(request.receive, check)
        finally:
            pending.release()
        check.verify()
        event = _event(provider, headers)
        try:
            payload = parse(body)
            del body  # the parsed payload is all that is needed from here on
            ignored = _not_ours(provider, event, payload, self.settings.served)
            if ignored is not None:
                return 202, ignored, "other_repository"
            if self._replayed(provider, headers):
                return 200, "duplicate", "replayed"
            status, message = handle(event, headers, payload, self.sink)
        except Malformed as error:
            raise Refused(400, str(error), "malformed") from error
        return status, message, "accepted" if status == 200 else "ignored"

    def _replayed(self, provider: str, headers: Mapping[str, str]) -> bool:
        delivery = _delivery_id(provider, headers)
        try:
            return bool(delivery) and self.sink.delivery_seen(provider, delivery)
        except StoreUnwritable as error:
            raise Refused(
                503,
                f"cannot record the delivery: {error}; retry later",
                "store_unwritable",
                STORE_RETRY_AFTER,
            ) from error

    def refusal(self, provider: str, client: str, refusal: Refused) -> JSONResponse:
        self.sink.delivery_counted(provider, refusal.result)
        self.refusals.refused(provider, client, refusal.status, refusal.message)
        # The body may be partly unread: closing is cheaper than draining it.
        headers = {"connection": "close"}
        if refusal.retry_after is not None:
            headers["retry-after"] = str(refusal.retry_after)
        return JSONResponse({"error": refusal.message}, refusal.status, headers)


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _declared_length(value: str | None, limit: int) -> int:
    if value is None:
        return 0  # chunked: bytes are reserved as they arrive
    if not value.isdigit():
        raise Refused(400, "Content-Length is not a number", "malformed")
    if int(value) > limit:
        raise Refused(413, f"body is {value} bytes, over the limit of {limit}", "too_large")
    return int(value)


class _Check:
    """Nothing to compute per chunk: the delivery was authenticated by a header."""

    def update(self, chunk: bytes) -> None:
        pass

    def verify(self) -> None:
        pass


class _Signature(_Check):
    """HMAC-SHA256 of the body, computed as it streams, compared at the end."""

    def __init__(self, secret: str, given: str, header: str) -> None:
        self._mac = hmac.new(secret.encode(), digestmod=hashlib.sha256)
        self._given = given.lower().encode("ascii", "replace")
        self._header = header

    def update(self, chunk: bytes) -> None:
        self._mac.update(chunk)

    def verify(self) -> None:
        if not hmac.compare_digest(self._given, self._mac.hexdigest().encode()):
            raise Refused(
                401,
                f"{self._header} does not match the body and the webhook secret",
                "unauthorized",
            )


def _authenticator(provider: str, headers: Mapping[str, str], secret: str) -> _Check:
    if provider == "gitlab":
        token = headers.get("x-gitlab-token", "")
        if not token:
            raise Refused(401, "missing X-Gitlab-Token header", "unauthorized")
        if not hmac.compare_digest(token.encode(), secret.encode()):
            raise Refused(401, "X-Gitlab-Token does not match the webhook secret", "unauthorized")
        return _Check()
    if provider == "gitea":
        given = headers.get("x-gitea-signature") or headers.get("x-forgejo-signature") or ""
        given = given or headers.get("x-hub-signature-256", "").removeprefix("sha256=")
        header = "X-Gitea-Signature"
    else:
        raw = headers.get("x-hub-signature-256", "")
        given = raw.removeprefix("sha256=") if raw.startswith("sha256=") else ""
        header = "X-Hub-Signature-256"
    if not given:
        raise Refused(401, f"missing {header} header", "unauthorized")
    return _Signature(secret, given, header)


def _event(provider: str, headers: Mapping[str, str]) -> str:
    if provider == "gitlab":
        return headers.get("x-gitlab-event", "")
    if provider == "gitea":
        event = headers.get("x-gitea-event") or headers.get("x-forgejo-event") or ""
        return event.replace("pull_request_sync", "pull_request")
    return headers.get("x-github-event", "")


def _repository_named(provider: str, payload: Fields) -> Fields:
    """Where a delivery names the repository it is about."""
    if provider == "gitlab":
        return payload.at("project", "path_with_namespace")
    return payload.at("repository", "full_name")


# Events that change something; the others are answered without acting.
_ACTING_EVENTS = frozenset({"push", "delete", "pull_request", "Push Hook", "Merge Request Hook"})
_REVIEW_EVENTS = frozenset({"pull_request", "Merge Request Hook"})


def _not_ours(provider: str, event: str, payload: Fields, served: ServedRepositories) -> str | None:
    """Why a delivery is ignored as not about the served repository, or None to act on it.

    With no served repository known, a push only makes the controller read its own
    remote (harmless whichever repository it names), but a pull request cannot be told
    apart from another repository's, so none is recorded.
    """
    named = _repository_named(provider, payload)
    if served.served(provider) is None:
        if event in _REVIEW_EVENTS:
            return f"ignored: {webhook_binding.unbound_reason(provider)}"
        return None
    if not named.present:
        if event in _ACTING_EVENTS:
            raise Malformed(f"{named.path} is missing: which repository is this about?")
        return None
    name = named.required_text()
    if not served.matches(provider, name):
        return f"ignored: other repository ({name[:200]})"
    return None


def _delivery_id(provider: str, headers: Mapping[str, str]) -> str:
    names = {
        "github": ("x-github-delivery",),
        "gitlab": ("x-gitlab-event-uuid", "idempotency-key"),
        "gitea": ("x-gitea-delivery", "x-forgejo-delivery", "x-github-delivery"),
    }[provider]
    for name in names:
        value = headers.get(name)
        if value:
            return value[:200]
    return ""


def _branch(ref: str | None) -> str | None:
    if ref is not None and ref.startswith("refs/heads/") and len(ref) > len("refs/heads/"):
        return ref.removeprefix("refs/heads/")
    return None


def _sha(value: str | None) -> str | None:
    if value is not None and len(value) == 40 and all(c in "0123456789abcdef" for c in value):
        return value
    return None


def _push(payload: Fields, sink: WebhookSink) -> Outcome:
    branch = _branch(payload.at("ref").required_text())
    if branch is None:
        return 202, "ignored: not a branch"
    after = _sha(payload.at("after").text())
    if payload.at("deleted").flag() or after == _ZERO_SHA:
        sink.branch_deleted(branch)
        return 200, f"sync queued: branch {branch} deleted"
    sink.branch_pushed(branch, after)
    return 200, f"sync queued for {branch}"


def _github(event: str, headers: Mapping[str, str], payload: Fields, sink: WebhookSink) -> Outcome:
    return _github_shaped("github", event, payload, sink)


def _gitea(event: str, headers: Mapping[str, str], payload: Fields, sink: WebhookSink) -> Outcome:
    return _github_shaped("gitea", event, payload, sink)


def _github_shaped(provider: str, event: str, payload: Fields, sink: WebhookSink) -> Outcome:
    if event == "ping":
        return 200, "pong"
    if event == "push":
        return _push(payload, sink)
    if event == "delete":
        if payload.at("ref_type").text() != "branch":
            return 202, "ignored: not a branch"
        branch = payload.at("ref").required_text()
        sink.branch_deleted(branch)
        return 200, f"sync queued: branch {branch} deleted"
    if event == "pull_request":
        return _pull_request(provider, payload, sink)
    return 202, f"ignored: Shipyard does not use {event or 'unnamed'} events"


def _pull_request(provider: str, payload: Fields, sink: WebhookSink) -> Outcome:
    number = payload.at("number").required_integer()
    request = payload.at("pull_request")
    head = request.at("head")
    branch = head.at("ref").required_text()
    head_repo = head.at("repo", "full_name").text()
    base_repo = (
        request.at("base", "repo", "full_name").text()
        or payload.at("repository", "full_name").text()
    )
    # A head repository that is gone (a deleted fork) is as untrusted as a fork.
    from_fork = (
        head_repo is None or base_repo is None or head_repo.casefold() != base_repo.casefold()
    )
    labels = tuple(
        name for label in request.at("labels").items() if (name := label.at("name").text())
    )
    sink.pull_request(provider, branch, number, from_fork=from_fork, labels=labels)
    sink.branch_pushed(branch, _sha(head.at("sha").text()))
    return 200, f"pull request #{number} noted"


def _gitlab(event: str, headers: Mapping[str, str], payload: Fields, sink: WebhookSink) -> Outcome:
    if event == "Push Hook":
        return _push(payload, sink)
    if event == "Merge Request Hook":
        attributes = payload.at("object_attributes")
        branch = attributes.at("source_branch").required_text()
        number = attributes.at("iid").required_integer()
        source = attributes.at("source_project_id").integer()
        target = attributes.at("target_project_id").integer()
        labels = tuple(
            title for label in payload.at("labels").items() if (title := label.at("title").text())
        )
        from_fork = source is None or source != target
        sink.pull_request("gitlab", branch, number, from_fork=from_fork, labels=labels)
        sink.branch_pushed(branch, _sha(attributes.at("last_commit", "id").text()))
        return 200, f"merge request !{number} noted"
    return 202, f"ignored: Shipyard does not use {event or 'unnamed'} events"
