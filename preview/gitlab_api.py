"""The few GitLab REST v4 calls preview feedback makes, and how each one is retried.

Mirrors `preview.github_api`: a 5xx or a dropped connection is retried with capped,
jittered backoff; a 429 waits for its Retry-After; any other 4xx will not get better by
asking again; a 401 means every further call of the report is pointless.

Projects are addressed by their URL-encoded path (`group%2Fname`), which GitLab accepts
wherever it takes a numeric project id. The token only ever travels in the
`PRIVATE-TOKEN` header: it is never part of a message, an exception or a log line.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypedDict, TypeVar, cast
from urllib.parse import quote

import httpx

log = logging.getLogger("shipyard.gitlab")

USER_AGENT = "shipyard-preview-feedback"
STATUS_NAME = "shipyard/preview"
MAX_BACKOFF = 30.0
# A Retry-After beyond this is not honoured in full; the caller's attempt budget decides.
MAX_RETRY_AFTER = 60.0
# 20 pages of 100: a merge request with more notes than that is not worth reading all of.
MAX_NOTE_PAGES = 20

_T = TypeVar("_T")


class GitLabError(Exception):
    """A call did not succeed; the message is safe to log (no token, no response body dump)."""


class GitLabUnavailable(GitLabError):
    """Transient failures outlasted the attempts: the rest of the report is not worth trying."""


class GitLabUnauthorized(GitLabUnavailable):
    """The token was refused (401): every other call would be refused too."""


class GitLabRejected(GitLabError):
    """A 4xx that asking again will not fix (permissions, validation, a missing object)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status} {message}")
        self.status = status
        self.detail = message


class GitLabAmbiguous(GitLabError):
    """A create request may or may not have taken effect; the caller must look before retrying."""


class _MergeRequestJSON(TypedDict):
    iid: int
    source_project_id: int
    target_project_id: int
    labels: list[str]


class _NoteJSON(TypedDict):
    id: int
    body: str | None
    system: bool


@dataclass(frozen=True)
class MergeRequest:
    """What feedback needs to know about one merge request."""

    iid: int
    from_fork: bool
    labels: frozenset[str]


def project_id(repository: str) -> str:
    """The URL-encoded project path GitLab takes in place of a numeric id."""
    return quote(repository, safe="")


class GitLabAPI:
    """Typed calls against one GitLab (gitlab.com or a self-managed `/api/v4`)."""

    def __init__(
        self,
        api_url: str,
        token: str,
        client: httpx.AsyncClient,
        *,
        max_attempts: int,
        backoff_base: float,
        rng: random.Random | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._api_url = api_url.rstrip("/")
        self._client = client
        self._max_attempts = max_attempts
        self._backoff_base = backoff_base
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._headers = {"PRIVATE-TOKEN": token, "User-Agent": USER_AGENT}

    @property
    def max_attempts(self) -> int:
        return self._max_attempts

    def backoff(self, failures: int) -> float:
        """The wait after `failures` consecutive failures: doubling, capped, jittered."""
        ceiling = min(MAX_BACKOFF, self._backoff_base * 2 ** max(0, failures - 1))
        return float(ceiling / 2 + self._rng.uniform(0, ceiling / 2))

    # -- calls ---------------------------------------------------------------------------

    async def create_status(
        self,
        repository: str,
        sha: str,
        *,
        state: str,
        ref: str,
        description: str,
        target_url: str | None,
        name: str = STATUS_NAME,
    ) -> None:
        body: dict[str, Any] = {
            "state": state,
            "ref": ref,
            "name": name,
            "description": description,
        }
        if target_url:
            body["target_url"] = target_url
        await self.request("POST", f"/projects/{project_id(repository)}/statuses/{sha}", json=body)

    async def merge_requests_from_branch(
        self, repository: str, branch: str, *, state: str = "opened"
    ) -> list[MergeRequest]:
        """Merge requests from `branch` of the project itself (never a fork's same-named one)."""
        params = {"source_branch": branch, "state": state, "per_page": "100"}
        path = f"/projects/{project_id(repository)}/merge_requests"
        response = await self.request("GET", path, params=params)
        found = _decode(response, lambda data: [_merge_request(item) for item in data])
        return [mr for mr in found if not mr.from_fork]

    async def find_note(self, repository: str, iid: int, marker: str) -> int | None:
        """The id of the note on MR `iid` whose body starts with `marker`, if any."""
        path = f"/projects/{project_id(repository)}/merge_requests/{iid}/notes"
        page = "1"
        for _ in range(MAX_NOTE_PAGES):
            params = {"per_page": "100", "page": page, "sort": "asc", "order_by": "created_at"}
            response = await self.request("GET", path, params=params)
            notes = _decode(response, lambda data: [_note(item) for item in data])
            for note, body in notes:
                # At the start only: a reviewer quoting our note must not be mistaken for it.
                if body.startswith(marker):
                    return note
            page = response.headers.get("x-next-page", "").strip()
            if not page.isdigit():
                break
        return None

    async def update_note(self, repository: str, iid: int, note: int, body: str) -> bool:
        """Replace the note's body; False when it no longer exists (someone deleted it)."""
        path = f"/projects/{project_id(repository)}/merge_requests/{iid}/notes/{note}"
        try:
            await self.request("PUT", path, json={"body": body})
        except GitLabRejected as error:
            if error.status == 404:
                return False
            raise
        return True

    async def create_note(self, repository: str, iid: int, body: str) -> int:
        """Post a new note. Raises `GitLabAmbiguous` when it may already exist."""
        path = f"/projects/{project_id(repository)}/merge_requests/{iid}/notes"
        response = await self.request("POST", path, json={"body": body}, idempotent=False)
        return _decode(response, _id)

    # -- transport -----------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: object = None,
        idempotent: bool = True,
    ) -> httpx.Response:
        """Send one call, retrying what is worth retrying (see the module docstring).

        `idempotent=False` marks a create whose duplicate would be visible (a second MR
        note): it is retried only when GitLab certainly did not act on it (no connection,
        or rate limited) and otherwise raises `GitLabAmbiguous`.
        """
        # `path` is built from already-encoded parts: `%2F` must reach GitLab as is.
        url = self._api_url + path
        what = f"{method} {path}"
        reason = ""
        for attempt in range(1, self._max_attempts + 1):
            try:
                response = await self._client.request(
                    method, url, params=params, json=json, headers=self._headers
                )
            except httpx.TransportError as error:
                never_sent = isinstance(error, httpx.ConnectError | httpx.ConnectTimeout)
                if not idempotent and not never_sent:
                    raise GitLabAmbiguous(f"{what}: {type(error).__name__}") from None
                reason = type(error).__name__
                wait = self.backoff(attempt)
            else:
                status = response.status_code
                if status < 400:
                    return response
                if status == 429:
                    limited = _retry_after(response)
                    reason = "429 rate limited"
                    wait = min(MAX_RETRY_AFTER, limited) if limited > 0 else self.backoff(attempt)
                elif status >= 500:
                    if not idempotent:
                        raise GitLabAmbiguous(f"{what}: {status}")
                    reason = str(status)
                    wait = self.backoff(attempt)
                elif status == 401:
                    raise GitLabUnauthorized(f"{what}: 401 {_message(response)}")
                else:
                    raise GitLabRejected(status, f"{_message(response)} ({what})")
            if attempt == self._max_attempts:
                break
            log.debug("%s failed (%s); retry %d in %.2fs", what, reason, attempt, wait)
            await asyncio.sleep(wait)
        raise GitLabUnavailable(f"{what}: {reason} after {self._max_attempts} attempts")


def _merge_request(data: object) -> MergeRequest:
    raw = cast(_MergeRequestJSON, data)
    source, target = raw["source_project_id"], raw["target_project_id"]
    # A deleted fork leaves no source project: still someone else's code.
    from_fork = source is None or source != target
    labels = frozenset(str(label).casefold() for label in raw.get("labels") or ())
    return MergeRequest(iid=_int(raw["iid"]), from_fork=from_fork, labels=labels)


def _note(data: object) -> tuple[int, str]:
    raw = cast(_NoteJSON, data)
    body = raw.get("body")
    # System notes ("added 1 commit") are GitLab's, never ours.
    if raw.get("system") or not isinstance(body, str):
        return _id(data), ""
    return _id(data), body


def _decode(response: httpx.Response, read: Callable[[Any], _T]) -> _T:
    """Apply `read` to the JSON body; a shape we do not expect is an error, not a crash."""
    try:
        return read(response.json())
    except (ValueError, KeyError, TypeError, IndexError, AttributeError):
        raise GitLabError(f"unexpected response to {response.request.url.path}") from None


def _id(data: object) -> int:
    return _int(cast(dict[str, object], data)["id"])


def _int(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError("not an integer")
    return value


def _retry_after(response: httpx.Response) -> float:
    """Seconds GitLab asks us to wait; 0 when it does not say."""
    value = (response.headers.get("retry-after") or "").strip()
    if value.isdigit():
        return float(value)
    reset = (response.headers.get("ratelimit-reset") or "").strip()
    if reset.isdigit():
        return max(0.0, int(reset) - time.time())
    if value:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return 0.0
        return max(0.0, when.timestamp() - time.time())
    return 0.0


def _message(response: httpx.Response) -> str:
    # GitLab answers `{"message": ...}` (a string, or a dict of field errors) or
    # `{"error": ...}` for parameter validation.
    try:
        data = response.json()
    except ValueError:
        return response.reason_phrase
    if isinstance(data, dict):
        message = data.get("message", data.get("error"))
        if message is not None:
            return str(message)[:200]
    return response.reason_phrase
