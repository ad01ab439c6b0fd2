"""The queue every forge notifier delivers through: background, coalescing, never raising.

GitHub and GitLab feedback differ in what they send, not in how: the controller hands a
report to `submit` and moves on; one worker per branch delivers that branch's newest
report on the event loop `submit` was first called from, a few branches at a time; a
failure is logged, never raised. Subclasses say how to reach their API (`_make_api`) and
what one delivery sends (`_deliver`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar, Generic, TypeVar

import httpx

from preview.feedback import PreviewReport

REQUEST_TIMEOUT = 10.0
# Deliveries for different branches run side by side, but not so many that a push storm
# trips a forge's secondary rate limit on concurrent requests.
MAX_CONCURRENT_DELIVERIES = 4
TRUSTED_LABEL = "shipyard:trusted"

Key = tuple[str, str]  # (repository, branch)
ApiT = TypeVar("ApiT")


@dataclass(frozen=True)
class ReviewRequest:
    """A pull or merge request as a webhook described it: what secrets depend on."""

    number: int  # GitHub's number, GitLab's iid
    from_fork: bool
    labels: frozenset[str]


class QueuedNotifier(ABC, Generic[ApiT]):
    """`submit`, `note_pull_request` and `secrets_allowed` never block and never raise.

    Deliveries run on the event loop `submit` is first called from; `flush` waits for
    them, `close` drops whatever is still queued (flush first for a graceful stop).
    Without a token the notifier does nothing but remember review requests.
    """

    forge: ClassVar[str]  # "GitHub", for messages
    review: ClassVar[str]  # "pull request", for messages
    unavailable: ClassVar[type[Exception]]  # the API's "gave up after retries" error
    log: ClassVar[logging.Logger]

    def __init__(
        self,
        api_url: str,
        token: str | None = None,
        *,
        max_attempts: int = 5,
        backoff_base: float = 0.5,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._api_url = api_url
        # Tokens read from files arrive with a trailing newline, which no header may hold.
        self._token = (token or "").strip()
        self._owns_client = client is None
        self._client = client
        self._settings = (max_attempts, backoff_base)
        self._api: ApiT | None = None
        if self._token:
            self._api = self._connect()
        self._disabled_logged = False
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: dict[Key, PreviewReport] = {}
        self._workers: dict[Key, asyncio.Task[None]] = {}
        self._slots = asyncio.Semaphore(MAX_CONCURRENT_DELIVERIES)
        # Webhook handlers may run on other threads than the deliveries.
        self._lock = threading.Lock()
        self._noted: dict[Key, dict[int, ReviewRequest]] = {}

    def __repr__(self) -> str:
        # Spelled out so that no future field (or debugger) shows the token.
        state = "enabled" if self._api else "disabled"
        return f"{type(self).__name__}({self._api_url!r}, {state})"

    @abstractmethod
    def _make_api(self, client: httpx.AsyncClient, max_attempts: int, backoff_base: float) -> ApiT:
        """The forge's API client over `client`, with the notifier's retry settings."""

    @abstractmethod
    async def _deliver(self, api: ApiT, report: PreviewReport) -> None:
        """Send everything one report shows on the forge."""

    # -- the controller's side -----------------------------------------------------------

    def submit(self, report: PreviewReport) -> None:
        """Queue `report` for delivery, replacing any undelivered one for the same branch."""
        try:
            self._submit(report)
        except Exception:
            self.log.exception("could not queue %s feedback for %s", self.forge, report.environment)

    async def flush(self) -> None:
        """Wait until every queued report was delivered (or given up on)."""
        while self._workers:
            await asyncio.gather(*list(self._workers.values()), return_exceptions=True)

    async def close(self) -> None:
        """Stop delivering: queued reports are dropped, in-flight ones cancelled."""
        self._closed = True
        self._pending.clear()
        workers = list(self._workers.values())
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        if self._owns_client and self._client is not None:
            client, self._client = self._client, None
            try:
                await client.aclose()
            except RuntimeError:
                # Its connections belong to an event loop that already ended.
                self.log.debug("%s client closed after its event loop", self.forge)

    def note_pull_request(
        self, repository: str, branch: str, number: int, *, from_fork: bool, labels: Iterable[str]
    ) -> None:
        """Remember a pull or merge request (GitLab: `number` is the iid) from a webhook.

        Call it for every action (opened, labeled, unlabeled, synchronize, ...): the
        labels given replace the ones remembered, so removing the trusted label takes
        effect. `branch` is the name the controller deploys the request's head under.
        """
        request = ReviewRequest(
            number=number,
            from_fork=from_fork,
            labels=frozenset(label.casefold() for label in labels),
        )
        with self._lock:
            self._noted.setdefault((repository, branch), {})[number] = request

    def secrets_allowed(
        self, repository: str, branch: str, trusted_label: str = TRUSTED_LABEL
    ) -> bool:
        """Whether the preview of `branch` may receive the agents' secrets.

        Code from a fork is written by someone without write access to the repository;
        running it with the repository's secrets would hand those secrets over. So a
        branch with any review request from a fork gets secrets only once a maintainer
        has put `trusted_label` on it. A branch with no request known was pushed to the
        repository itself, by someone who could read the secrets anyway.
        """
        label = trusted_label.casefold()
        with self._lock:
            known = list(self._noted.get((repository, branch), {}).values())
        return all(not request.from_fork or label in request.labels for request in known)

    def _noted_numbers(self, report: PreviewReport) -> list[int]:
        """Review requests webhooks told us about for the report's branch, by number."""
        with self._lock:
            return sorted(self._noted.get((report.repository, report.branch), {}))

    # -- queueing ------------------------------------------------------------------------

    def _submit(self, report: PreviewReport) -> None:
        if self._api is None:
            if not self._disabled_logged:
                self._disabled_logged = True
                self.log.info("no %s token configured: %s feedback is off", self.forge, self.review)
            return
        if self._closed:
            self.log.debug("notifier closed; dropped report for %s", report.environment)
            return
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        home = self._loop
        if home is None or home.is_closed():
            if running is None:
                self.log.warning(
                    "%s feedback needs a running event loop; report dropped", self.forge
                )
                return
            # A new loop (the previous one ended): tasks and locks of the old are dead.
            if home is not None:
                self._workers.clear()
                self._slots = asyncio.Semaphore(MAX_CONCURRENT_DELIVERIES)
                if self._owns_client:
                    self._client = None  # its pooled connections died with the old loop
                    self._api = self._connect()
            self._loop = home = running
        if running is home:
            self._enqueue(report)
        else:
            # Called from another thread: the queue belongs to the delivery loop.
            home.call_soon_threadsafe(self._enqueue, report)

    def _connect(self) -> ApiT:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=REQUEST_TIMEOUT)
        max_attempts, backoff_base = self._settings
        return self._make_api(self._client, max_attempts, backoff_base)

    def _enqueue(self, report: PreviewReport) -> None:
        key = (report.repository, report.branch)
        self._pending[key] = report
        if key not in self._workers:
            name = f"{self.forge.lower()}-feedback:{report.repository}:{report.branch}"
            self._workers[key] = asyncio.get_running_loop().create_task(self._drain(key), name=name)

    async def _drain(self, key: Key) -> None:
        # One worker per branch delivers that branch's reports in order; whatever arrives
        # meanwhile overwrites `_pending[key]`, so only the newest is delivered next.
        try:
            while key in self._pending:
                async with self._slots:
                    report = self._pending.pop(key, None)
                    if report is not None:
                        await self._deliver_safely(report)
        finally:
            self._workers.pop(key, None)

    async def _deliver_safely(self, report: PreviewReport) -> None:
        api = self._api
        assert api is not None  # only queued when enabled
        try:
            await self._deliver(api, report)
        except self.unavailable as error:
            self.log.warning(
                "%s feedback for %s at %s not delivered: %s",
                self.forge,
                report.environment,
                report.short_sha,
                error,
            )
        except Exception:
            self.log.exception("%s feedback for %s failed", self.forge, report.environment)
