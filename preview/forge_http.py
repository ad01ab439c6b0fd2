"""One way to call a forge's REST API: which failures are retried, how long to wait, when to stop.

GitHub, GitLab and Gitea fail in the same few ways, and each deserves its own answer:

- a 5xx, a dropped connection or a timeout is worth retrying, with capped, jittered
  exponential backoff;
- a 429 (or GitHub's 403 carrying rate-limit headers) says how long to wait: its
  `Retry-After` (seconds or an HTTP date) or its reset time is honoured, up to a cap;
- a 401 means every further call of the report is pointless (`ForgeUnauthorized`);
- any other 4xx will not get better by asking again (`ForgeRejected`, never retried);
- a create whose duplicate would show (a second pull request comment) is retried only
  when the forge certainly did not act on it: the connection never opened, or the forge
  rate-limited it; otherwise the caller hears `ForgeAmbiguous` and must look first;
- one call never takes longer than its time budget, waits and attempts included: each
  attempt's timeout is the lesser of the request timeout and what is left of the budget,
  and no retry starts whose wait would end past it.

The retry loop itself is tenacity's (`AsyncRetrying`); what is here is the policy. The
token travels only in the headers the adapter hands over: it is never part of a message,
an exception or a log line.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_before_delay,
    wait_random_exponential,
)

from controller.errors import ShipyardError, Transient

USER_AGENT = "shipyard-preview-feedback"
MAX_BACKOFF = 30.0
# A Retry-After beyond this is not honoured in full; the time budget decides the rest.
MAX_RETRY_AFTER = 60.0
# Never hand httpx a timeout so small it fails before it could connect on loopback.
MIN_ATTEMPT_TIMEOUT = 0.05

_T = TypeVar("_T")
_NEXT_LINK = re.compile(r'<([^>]+)>\s*;\s*rel="next"')


class ForgeError(ShipyardError):
    """A call did not succeed; the message is safe to log (no token, no response body dump)."""


class ForgeUnavailable(ForgeError, Transient):
    """Transient failures outlasted the attempts or the time budget: the rest of the
    report is not worth trying."""


class ForgeUnauthorized(ForgeUnavailable):
    """The token was refused (401): every other call would be refused too."""


class ForgeRejected(ForgeError):
    """A 4xx that asking again will not fix (permissions, validation, a missing object)."""

    def __init__(self, status: int, detail: str, what: str) -> None:
        super().__init__(f"{status} {detail} ({what})")
        self.status = status
        self.detail = detail


class ForgeAmbiguous(ForgeError):
    """A create may or may not have taken effect; the caller must look before retrying."""


class _WorthRetrying(Exception):
    """One failed attempt that another may fix; `asked` is the forge's own wait, if it said."""

    def __init__(self, reason: str, asked: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.asked = asked


@dataclass(frozen=True)
class RetryPolicy:
    """How hard one forge call tries: attempts, backoff, and the time it may take in all."""

    max_attempts: int = 5
    backoff_base: float = 0.5  # the first backoff's ceiling; doubles per failure
    request_timeout: float = 10.0  # one attempt, connect to last byte
    budget: float = 90.0  # one call, every attempt and wait included

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.backoff_base < 0 or self.request_timeout <= 0 or self.budget <= 0:
            raise ValueError("backoff_base, request_timeout and budget must be positive")

    def retrying(
        self, retry_on: type[BaseException], log: logging.Logger, what: str
    ) -> AsyncRetrying:
        """Tenacity's loop with this policy, retrying `retry_on` and re-raising the last;
        each retry is logged (at debug) as `what` failed."""
        backoff = wait_random_exponential(multiplier=self.backoff_base, max=MAX_BACKOFF)

        def wait(state: RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome else None
            asked = error.asked if isinstance(error, _WorthRetrying) else None
            if asked is not None and asked > 0:
                return min(MAX_RETRY_AFTER, asked)
            return float(backoff(state))

        def before_sleep(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            log.debug(
                "%s failed (%s); retry %d in %.2fs",
                what,
                error,
                state.attempt_number,
                state.upcoming_sleep,
            )

        return AsyncRetrying(
            stop=stop_after_attempt(self.max_attempts) | stop_before_delay(self.budget),
            wait=wait,
            retry=retry_if_exception_type(retry_on),
            before_sleep=before_sleep,
            sleep=asyncio.sleep,
            reraise=True,
        )


class ForgeHTTP:
    """Calls against one forge's API base URL with one set of auth headers and a policy.

    The httpx client is bound by whoever owns the event loop (`bind`): pooled
    connections belong to the loop that opened them.
    """

    def __init__(
        self,
        api_url: str,
        headers: Mapping[str, str],
        policy: RetryPolicy,
        log: logging.Logger,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.policy = policy
        self.log = log
        self._headers = {"User-Agent": USER_AGENT, **headers}
        self._client: httpx.AsyncClient | None = None

    def __repr__(self) -> str:
        # Spelled out so that no debugger or log shows the auth headers.
        return f"ForgeHTTP({self.api_url!r})"

    def bind(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def request(
        self,
        method: str,
        path_or_url: str,
        *,
        params: Mapping[str, str] | None = None,
        json: object = None,
        idempotent: bool = True,
    ) -> httpx.Response:
        """Send one call, retrying what is worth retrying (see the module docstring).

        `path_or_url` is a path below the API URL, already percent-encoded where it
        must be (GitLab's `group%2Fname`), or a full URL of the same origin (a next page).
        """
        url = path_or_url if "://" in path_or_url else self.api_url + _quote_path(path_or_url)
        if "://" in path_or_url and not self.same_origin(url):
            raise ForgeError("refusing to send the token to another origin")
        what = f"{method} {httpx.URL(url).path}"
        deadline = time.monotonic() + self.policy.budget
        attempts = 0
        try:
            async for attempt in self.policy.retrying(_WorthRetrying, self.log, what):
                with attempt:
                    attempts += 1
                    return await self._attempt(
                        method,
                        url,
                        what=what,
                        params=params,
                        json=json,
                        idempotent=idempotent,
                        deadline=deadline,
                    )
        except _WorthRetrying as last:
            raise ForgeUnavailable(f"{what}: {last.reason} after {attempts} attempts") from None
        raise AssertionError("tenacity ended without an outcome")  # pragma: no cover

    async def _attempt(
        self,
        method: str,
        url: str,
        *,
        what: str,
        params: Mapping[str, str] | None,
        json: object,
        idempotent: bool,
        deadline: float,
    ) -> httpx.Response:
        if self._client is None:
            raise RuntimeError("ForgeHTTP used before a client was bound")
        left = max(MIN_ATTEMPT_TIMEOUT, deadline - time.monotonic())
        try:
            response = await self._client.request(
                method,
                url,
                params=params,
                json=json,
                headers=self._headers,
                timeout=min(self.policy.request_timeout, left),
            )
        except httpx.TransportError as error:
            # A connection that never opened carried nothing; any later failure may have
            # reached the forge.
            never_sent = isinstance(
                error, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout
            )
            if not idempotent and not never_sent:
                raise ForgeAmbiguous(f"{what}: {type(error).__name__}") from None
            raise _WorthRetrying(type(error).__name__) from None
        status = response.status_code
        if status < 400:
            return response
        asked = rate_limit_wait(response)
        if asked is not None:
            # Refused before it was acted on: safe to repeat, even for a create.
            raise _WorthRetrying(f"{status} rate limited", asked)
        if status >= 500:
            if not idempotent:
                raise ForgeAmbiguous(f"{what}: {status}")
            raise _WorthRetrying(str(status))
        if status == 401:
            raise ForgeUnauthorized(f"{what}: 401 {error_message(response)}")
        raise ForgeRejected(status, error_message(response), what)

    def same_origin(self, url: str) -> bool:
        ours, theirs = httpx.URL(self.api_url), httpx.URL(url)
        return (ours.scheme, ours.host, ours.port) == (theirs.scheme, theirs.host, theirs.port)


def rate_limit_wait(response: httpx.Response) -> float | None:
    """Seconds the forge asks us to wait, 0 when rate limited without saying, None when the
    response is no rate limit at all."""
    status = response.status_code
    headers = response.headers
    retry_after = headers.get("retry-after")
    exhausted = headers.get("x-ratelimit-remaining") == "0"
    # GitHub answers 403 as well as 429 for both its primary and secondary limits.
    if status != 429 and not (status == 403 and (retry_after is not None or exhausted)):
        return None
    if retry_after is not None:
        return _parse_retry_after(retry_after)
    # GitHub's `x-ratelimit-reset` and GitLab's `ratelimit-reset`: epoch seconds.
    reset = (headers.get("x-ratelimit-reset") or headers.get("ratelimit-reset") or "").strip()
    if reset.isdigit():
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


def error_message(response: httpx.Response) -> str:
    """The forge's own one-line reason: `{"message": ...}` (GitHub, Gitea, GitLab) or
    GitLab's `{"error": ...}`; else the reason phrase. Clipped: it ends up in logs."""
    try:
        data = response.json()
    except ValueError:
        return response.reason_phrase
    if isinstance(data, dict):
        message = data.get("message", data.get("error"))
        if message is not None:
            return str(message)[:200]
    return response.reason_phrase


async def unless_gone(call: Awaitable[httpx.Response]) -> bool:
    """Await an edit; False when its object no longer exists (someone deleted it)."""
    try:
        await call
    except ForgeRejected as error:
        if error.status == 404:
            return False
        raise
    return True


def decode(response: httpx.Response, read: Callable[[Any], _T]) -> _T:
    """Apply `read` to the JSON body; a shape we do not expect is an error, not a crash."""
    try:
        return read(response.json())
    except (ValueError, KeyError, TypeError, IndexError, AttributeError):
        raise ForgeError(f"unexpected response to {response.request.url.path}") from None


def integer(value: object) -> int:
    """A JSON integer (ids, numbers); booleans and strings are a shape error."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError("not an integer")
    return value


def next_page(response: httpx.Response) -> str | None:
    """The `rel="next"` URL of a `Link` header (GitHub, Gitea), if there is one."""
    match = _NEXT_LINK.search(response.headers.get("link", ""))
    return match.group(1) if match else None


def _quote_path(path: str) -> str:
    # Owners, repositories and shas are plain, but a path must never be able to smuggle
    # a `?` or `#` in from an odd repository string. `%` stays: GitLab's project paths
    # arrive encoded.
    return quote(path, safe="/-_.~:@%")
