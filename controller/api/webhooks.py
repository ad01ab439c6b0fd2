"""Webhook receivers: GitHub, GitLab and Gitea/Forgejo deliveries become targeted syncs.

Every receiver checks the signature (or token) in constant time *before* parsing the
body, bounds the body size, recognizes replayed deliveries, and answers quickly: the
actual work is queued on the controller, which coalesces bursts per branch.

Status codes: 200 processed (or a replay, said so), 202 accepted but not an event
Shipyard uses, 400 malformed JSON, 401 missing or wrong signature, 403 no secret
configured, 413 body too large.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

MAX_BODY = 5 * 1024 * 1024
_ZERO_SHA = "0" * 40


class WebhookSink(Protocol):
    """What deliveries turn into; the controller implements it."""

    def branch_pushed(self, branch: str, sha: str | None) -> None: ...

    def branch_deleted(self, branch: str) -> None: ...

    def pull_request(
        self, branch: str, number: int, *, from_fork: bool, labels: tuple[str, ...]
    ) -> None: ...

    def delivery_seen(self, provider: str, delivery: str) -> bool:
        """Record `delivery`; True when it was recorded before (a replay)."""
        ...

    def delivery_counted(self, provider: str, result: str) -> None: ...


@dataclass(frozen=True)
class WebhookSettings:
    secret: str | None
    max_body: int = MAX_BODY


class _Rejected(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def create_router(settings: WebhookSettings, sink: WebhookSink) -> APIRouter:
    router = APIRouter(prefix="/hooks", tags=["webhooks"])

    @router.post("/github", summary="GitHub webhook (push, pull_request, delete, ping)")
    async def github(request: Request) -> JSONResponse:
        return await _receive("github", request, settings, sink, _github)

    @router.post("/gitlab", summary="GitLab webhook (push and merge request hooks)")
    async def gitlab(request: Request) -> JSONResponse:
        return await _receive("gitlab", request, settings, sink, _gitlab)

    @router.post("/gitea", summary="Gitea / Forgejo webhook (push, delete, pull_request)")
    async def gitea(request: Request) -> JSONResponse:
        return await _receive("gitea", request, settings, sink, _gitea)

    return router


async def _receive(
    provider: str,
    request: Request,
    settings: WebhookSettings,
    sink: WebhookSink,
    handle: Any,
) -> JSONResponse:
    try:
        body = await _read_body(request, settings.max_body)
        _authenticate(provider, request.headers, body, settings.secret)
        payload = _parse(body)
        delivery = _delivery_id(provider, request.headers)
        if delivery and sink.delivery_seen(provider, delivery):
            sink.delivery_counted(provider, "replayed")
            return JSONResponse({"status": "duplicate", "delivery": delivery}, status_code=200)
        outcome: tuple[int, str] = handle(request.headers, payload, sink)
    except _Rejected as rejection:
        sink.delivery_counted(provider, _result_label(rejection.status))
        return JSONResponse({"error": rejection.message}, status_code=rejection.status)
    status, message = outcome
    sink.delivery_counted(provider, "accepted" if status == 200 else "ignored")
    return JSONResponse({"status": message}, status_code=status)


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _Rejected(413, f"body is {declared} bytes, over the limit of {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _Rejected(413, f"body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _authenticate(
    provider: str, headers: Mapping[str, str], body: bytes, secret: str | None
) -> None:
    if not secret:
        raise _Rejected(403, "webhooks are disabled: start Shipyard with --webhook-secret")
    if provider == "gitlab":
        token = headers.get("x-gitlab-token", "")
        if not token:
            raise _Rejected(401, "missing X-Gitlab-Token header")
        if not hmac.compare_digest(token.encode(), secret.encode()):
            raise _Rejected(401, "X-Gitlab-Token does not match the webhook secret")
        return
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if provider == "gitea":
        given = headers.get("x-gitea-signature") or headers.get("x-forgejo-signature") or ""
        given = given or headers.get("x-hub-signature-256", "").removeprefix("sha256=")
        header = "X-Gitea-Signature"
    else:
        raw = headers.get("x-hub-signature-256", "")
        given = raw.removeprefix("sha256=") if raw.startswith("sha256=") else ""
        header = "X-Hub-Signature-256"
    if not given:
        raise _Rejected(401, f"missing {header} header")
    if not hmac.compare_digest(given.lower().encode(), expected.encode()):
        raise _Rejected(401, f"{header} does not match the body and the webhook secret")


def _parse(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise _Rejected(400, f"body is not valid JSON: {error}") from error
    if not isinstance(payload, dict):
        raise _Rejected(400, "body must be a JSON object")
    return payload


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


def _result_label(status: int) -> str:
    return {400: "malformed", 401: "unauthorized", 403: "disabled", 413: "too_large"}.get(
        status, "rejected"
    )


def _branch(ref: Any) -> str | None:
    if isinstance(ref, str) and ref.startswith("refs/heads/") and len(ref) > len("refs/heads/"):
        return ref.removeprefix("refs/heads/")
    return None


def _sha(value: Any) -> str | None:
    if isinstance(value, str) and len(value) == 40 and all(c in "0123456789abcdef" for c in value):
        return value
    return None


def _require(payload: Mapping[str, Any], *path: str) -> Any:
    value: Any = payload
    for key in path:
        if not isinstance(value, Mapping) or key not in value:
            raise _Rejected(400, f"payload has no {'.'.join(path)}")
        value = value[key]
    return value


def _push(payload: Mapping[str, Any], sink: WebhookSink) -> tuple[int, str]:
    branch = _branch(_require(payload, "ref"))
    if branch is None:
        return 202, "ignored: not a branch"
    after = _sha(payload.get("after"))
    if payload.get("deleted") is True or after == _ZERO_SHA:
        sink.branch_deleted(branch)
        return 200, f"sync queued: branch {branch} deleted"
    sink.branch_pushed(branch, after)
    return 200, f"sync queued for {branch}"


def _github(
    headers: Mapping[str, str], payload: dict[str, Any], sink: WebhookSink
) -> tuple[int, str]:
    event = headers.get("x-github-event", "")
    if event == "ping":
        return 200, "pong"
    if event == "push":
        return _push(payload, sink)
    if event == "delete":
        if payload.get("ref_type") != "branch":
            return 202, "ignored: not a branch"
        branch = _require(payload, "ref")
        if not isinstance(branch, str) or not branch:
            raise _Rejected(400, "payload ref must be a branch name")
        sink.branch_deleted(branch)
        return 200, f"sync queued: branch {branch} deleted"
    if event == "pull_request":
        return _pull_request(payload, sink)
    return 202, f"ignored: Shipyard does not use {event or 'unnamed'} events"


def _pull_request(payload: Mapping[str, Any], sink: WebhookSink) -> tuple[int, str]:
    head = _require(payload, "pull_request", "head")
    branch = head.get("ref") if isinstance(head, Mapping) else None
    number = payload.get("number")
    if not isinstance(branch, str) or not isinstance(number, int):
        raise _Rejected(400, "pull_request payload needs number and pull_request.head.ref")
    head_repo = (head.get("repo") or {}).get("full_name")
    base_repo = ((payload.get("pull_request") or {}).get("base") or {}).get("repo") or {}
    labels = tuple(
        str(label.get("name"))
        for label in (payload.get("pull_request") or {}).get("labels") or []
        if isinstance(label, Mapping)
    )
    sink.pull_request(
        branch,
        number,
        from_fork=bool(head_repo) and head_repo != base_repo.get("full_name"),
        labels=labels,
    )
    sink.branch_pushed(branch, _sha(head.get("sha")))
    return 200, f"pull request #{number} noted"


def _gitlab(
    headers: Mapping[str, str], payload: dict[str, Any], sink: WebhookSink
) -> tuple[int, str]:
    event = headers.get("x-gitlab-event", "")
    if event == "Push Hook":
        return _push(payload, sink)
    if event == "Merge Request Hook":
        attributes = _require(payload, "object_attributes")
        branch = attributes.get("source_branch") if isinstance(attributes, Mapping) else None
        number = attributes.get("iid") if isinstance(attributes, Mapping) else None
        if not isinstance(branch, str) or not isinstance(number, int):
            raise _Rejected(400, "merge request payload needs source_branch and iid")
        source = attributes.get("source_project_id")
        target = attributes.get("target_project_id")
        labels = tuple(
            str(label.get("title"))
            for label in payload.get("labels") or []
            if isinstance(label, Mapping)
        )
        sink.pull_request(
            branch,
            number,
            from_fork=source != target,
            labels=labels,
        )
        sink.branch_pushed(branch, _sha((attributes.get("last_commit") or {}).get("id")))
        return 200, f"merge request !{number} noted"
    return 202, f"ignored: Shipyard does not use {event or 'unnamed'} events"


def _gitea(
    headers: Mapping[str, str], payload: dict[str, Any], sink: WebhookSink
) -> tuple[int, str]:
    event = headers.get("x-gitea-event") or headers.get("x-forgejo-event") or ""
    github_style = {"x-github-event": event.replace("pull_request_sync", "pull_request")}
    return _github(github_style, payload, sink)
