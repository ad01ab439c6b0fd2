"""The handful of GitHub REST v3 calls PR feedback needs, with GitHub's retry etiquette.

GitHub fails in a few distinct ways and each deserves its own answer: a 5xx or a dropped
connection is worth retrying with backoff; a 429 (or a 403 carrying rate-limit headers)
says exactly how long to wait; any other 4xx will not get better by asking again; a 401
means every further call of the report is pointless. Keeping that policy here lets the
notifier read as "post a status, upsert a comment" and nothing else.

The token only ever travels in the Authorization header: it is never part of a message,
an exception or a log line.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypedDict, TypeVar, cast
from urllib.parse import quote

import httpx

log = logging.getLogger("shipyard.github")

USER_AGENT = "shipyard-preview-feedback"
API_VERSION = "2022-11-28"
MAX_BACKOFF = 30.0
# A Retry-After beyond this is not honoured in full; the caller's attempt budget decides.
MAX_RETRY_AFTER = 60.0
# 20 pages of 100: a pull request with more comments than that is not worth reading all of.
MAX_COMMENT_PAGES = 20

_T = TypeVar("_T")
_NEXT_LINK = re.compile(r'<([^>]+)>\s*;\s*rel="next"')


class GitHubError(Exception):
    """A call did not succeed; the message is safe to log (no token, no response body dump)."""


class GitHubUnavailable(GitHubError):
    """Transient failures outlasted the attempts: the rest of the report is not worth trying."""


class GitHubUnauthorized(GitHubUnavailable):
    """The token was refused (401): every other call would be refused too."""


class GitHubRejected(GitHubError):
    """A 4xx that asking again will not fix (permissions, validation, a missing object)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status} {message}")
        self.status = status


class GitHubAmbiguous(GitHubError):
    """A create request may or may not have taken effect; the caller must look before retrying."""


# Raw JSON, only the fields read here.
class _RepoJSON(TypedDict):
    full_name: str


class _RefJSON(TypedDict):
    ref: str
    repo: _RepoJSON | None  # None when the fork was deleted


class _LabelJSON(TypedDict):
    name: str


class _PullJSON(TypedDict):
    number: int
    head: _RefJSON
    base: _RefJSON
    labels: list[_LabelJSON]


class _CommentJSON(TypedDict):
    id: int
    body: str | None


class _CreatedJSON(TypedDict):
    id: int


class _ErrorJSON(TypedDict, total=False):
    message: str


@dataclass(frozen=True)
class PullRequest:
    """What feedback needs to know about one pull request."""

    number: int
    from_fork: bool
    labels: frozenset[str]


class GitHubAPI:
    """Typed calls against one GitHub (github.com or an Enterprise server's `/api/v3`)."""

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
        self._headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": USER_AGENT,
        }

    @property
    def max_attempts(self) -> int:
        return self._max_attempts

    def backoff(self, failures: int) -> float:
        """The wait after `failures` consecutive failures: doubling, capped, jittered."""
        ceiling = min(MAX_BACKOFF, self._backoff_base * 2 ** max(0, failures - 1))
        # Full jitter (but never under half) keeps many controllers from retrying in step.
        return float(ceiling / 2 + self._rng.uniform(0, ceiling / 2))

    # -- calls ---------------------------------------------------------------------------

    async def create_status(
        self,
        repository: str,
        sha: str,
        *,
        state: str,
        description: str,
        target_url: str | None,
        context: str = "shipyard/preview",
    ) -> None:
        body: dict[str, Any] = {
            "state": state,
            "context": context,
            "description": description,
        }
        if target_url:
            body["target_url"] = target_url
        await self.request("POST", f"/repos/{repository}/statuses/{sha}", json=body)

    async def find_deployment(
        self, repository: str, environment: str, sha: str | None
    ) -> int | None:
        """The newest deployment of `environment` (at `sha` when given), if there is one."""
        params = {"environment": environment, "per_page": "1"}
        if sha:
            params["sha"] = sha
        response = await self.request("GET", f"/repos/{repository}/deployments", params=params)
        items = _decode(response, lambda data: [_id(item) for item in data])
        return items[0] if items else None

    async def create_deployment(
        self, repository: str, sha: str, environment: str, *, production: bool, description: str
    ) -> int:
        body = {
            "ref": sha,
            "environment": environment,
            "description": description,
            # Merging the default branch into a preview's head is not ours to do.
            "auto_merge": False,
            # Without it GitHub refuses (409) while our own status is still pending.
            "required_contexts": [],
            "transient_environment": not production,
            "production_environment": production,
        }
        response = await self.request("POST", f"/repos/{repository}/deployments", json=body)
        return _decode(response, _id)

    async def create_deployment_status(
        self,
        repository: str,
        deployment: int,
        *,
        state: str,
        description: str,
        environment_url: str | None = None,
        log_url: str | None = None,
    ) -> None:
        body: dict[str, Any] = {"state": state, "description": description}
        if environment_url:
            body["environment_url"] = environment_url
        if log_url:
            body["log_url"] = log_url
        path = f"/repos/{repository}/deployments/{deployment}/statuses"
        await self.request("POST", path, json=body)

    async def pulls_from_branch(
        self, repository: str, branch: str, *, state: str = "open"
    ) -> list[PullRequest]:
        """Pull requests whose head is `branch` of the repository itself (never a fork's)."""
        owner = repository.split("/", 1)[0]
        params = {"head": f"{owner}:{branch}", "state": state, "per_page": "100"}
        response = await self.request("GET", f"/repos/{repository}/pulls", params=params)
        return _decode(response, lambda data: [_pull_request(item) for item in data])

    async def find_comment(self, repository: str, number: int, marker: str) -> int | None:
        """The id of the comment on PR `number` whose body starts with `marker`, if any."""
        url: str | None = f"{self._api_url}/repos/{repository}/issues/{number}/comments"
        params: dict[str, str] | None = {"per_page": "100"}
        for _ in range(MAX_COMMENT_PAGES):
            if url is None:
                break
            response = await self.request("GET", url, params=params)
            comments = _decode(response, lambda data: [_comment(item) for item in data])
            for comment, body in comments:
                # At the start only: a reviewer quoting our comment must not be mistaken
                # for it (and we could not edit theirs anyway).
                if body.startswith(marker):
                    return comment
            url, params = _next_page(response), None
            if url is not None and not self._same_origin(url):
                # The token goes wherever we follow; only ever to the configured API.
                log.warning("not following a comments page link to another host")
                break
        return None

    async def update_comment(self, repository: str, comment: int, body: str) -> bool:
        """Replace the comment's body; False when it no longer exists (someone deleted it)."""
        path = f"/repos/{repository}/issues/comments/{comment}"
        try:
            await self.request("PATCH", path, json={"body": body})
        except GitHubRejected as error:
            if error.status == 404:
                return False
            raise
        return True

    async def create_comment(self, repository: str, number: int, body: str) -> int:
        """Post a new comment. Raises `GitHubAmbiguous` when it may already exist."""
        path = f"/repos/{repository}/issues/{number}/comments"
        response = await self.request("POST", path, json={"body": body}, idempotent=False)
        return _decode(response, _id)

    def _same_origin(self, url: str) -> bool:
        ours, theirs = httpx.URL(self._api_url), httpx.URL(url)
        return (ours.scheme, ours.host, ours.port) == (theirs.scheme, theirs.host, theirs.port)

    # -- transport -----------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path_or_url: str,
        *,
        params: Mapping[str, str] | None = None,
        json: object = None,
        idempotent: bool = True,
    ) -> httpx.Response:
        """Send one call, retrying what GitHub's documentation says is worth retrying.

        `idempotent=False` marks a create whose duplicate would be visible (a second PR
        comment): it is retried only when GitHub certainly did not act on it (no
        connection, or rate limited) and otherwise raises `GitHubAmbiguous`.
        """
        url = path_or_url if "://" in path_or_url else self._api_url + _quote_path(path_or_url)
        what = f"{method} {httpx.URL(url).path}"
        for attempt in range(1, self._max_attempts + 1):
            try:
                response = await self._client.request(
                    method, url, params=params, json=json, headers=self._headers
                )
            except httpx.TransportError as error:
                # A connection that never opened carried nothing; any later failure may
                # have reached GitHub.
                never_sent = isinstance(error, httpx.ConnectError | httpx.ConnectTimeout)
                if not idempotent and not never_sent:
                    raise GitHubAmbiguous(f"{what}: {type(error).__name__}") from None
                reason = type(error).__name__
                wait = self.backoff(attempt)
            else:
                status = response.status_code
                if status < 400:
                    return response
                limited = _rate_limit_wait(response)
                if limited is not None:
                    reason = f"{status} rate limited"
                    wait = min(MAX_RETRY_AFTER, limited) if limited > 0 else self.backoff(attempt)
                elif status >= 500:
                    if not idempotent:
                        raise GitHubAmbiguous(f"{what}: {status}")
                    reason = str(status)
                    wait = self.backoff(attempt)
                elif status == 401:
                    raise GitHubUnauthorized(f"{what}: 401 {_message(response)}")
                else:
                    raise GitHubRejected(status, f"{_message(response)} ({what})")
            if attempt == self._max_attempts:
                break
            log.debug("%s failed (%s); retry %d in %.2fs", what, reason, attempt, wait)
            await asyncio.sleep(wait)
        raise GitHubUnavailable(f"{what}: {reason} after {self._max_attempts} attempts")


def _pull_request(data: object) -> PullRequest:
    raw = cast(_PullJSON, data)
    head_repo, base_repo = raw["head"]["repo"], raw["base"]["repo"]
    # A deleted fork leaves `head.repo` null: still someone else's code.
    from_fork = (
        head_repo is None
        or base_repo is None
        or (head_repo["full_name"].lower() != base_repo["full_name"].lower())
    )
    labels = frozenset(label["name"] for label in raw.get("labels") or ())
    return PullRequest(number=_id({"id": raw["number"]}), from_fork=from_fork, labels=labels)


def _decode(response: httpx.Response, read: Callable[[Any], _T]) -> _T:
    """Apply `read` to the JSON body; a shape we do not expect is an error, not a crash."""
    try:
        return read(response.json())
    except (ValueError, KeyError, TypeError, IndexError, AttributeError):
        raise GitHubError(f"unexpected response to {response.request.url.path}") from None


def _id(data: object) -> int:
    value = cast(_CreatedJSON, data)["id"]
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError("id is not an integer")
    return value


def _comment(data: object) -> tuple[int, str]:
    body = cast(_CommentJSON, data).get("body")
    return _id(data), body if isinstance(body, str) else ""


def _rate_limit_wait(response: httpx.Response) -> float | None:
    """Seconds GitHub asks us to wait, 0 when rate limited without saying, None otherwise."""
    status = response.status_code
    retry_after = response.headers.get("retry-after")
    exhausted = response.headers.get("x-ratelimit-remaining") == "0"
    # GitHub answers 403 as well as 429 for both its primary and secondary limits.
    if status != 429 and not (status == 403 and (retry_after is not None or exhausted)):
        return None
    if retry_after is not None:
        return _parse_retry_after(retry_after)
    reset = response.headers.get("x-ratelimit-reset")
    if exhausted and reset and reset.isdigit():
        return max(0.0, int(reset) - time.time())
    return 0.0


def _parse_retry_after(value: str) -> float:
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return 0.0
    return max(0.0, when.timestamp() - time.time())


def _next_page(response: httpx.Response) -> str | None:
    match = _NEXT_LINK.search(response.headers.get("link", ""))
    return match.group(1) if match else None


def _message(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.reason_phrase
    if isinstance(data, dict):
        message = cast(_ErrorJSON, data).get("message")
        if isinstance(message, str):
            return message[:200]
    return response.reason_phrase


def _quote_path(path: str) -> str:
    # Owners, repositories and shas are plain, but a path must never be able to smuggle
    # a `?` or `#` in from an odd repository string.
    return quote(path, safe="/-_.~:@")
