"""The queue every forge's feedback goes through: background, coalescing, never raising.

The controller hands a report to `submit` and moves on; one worker per branch delivers
that branch's newest report on the event loop `submit` was first called from, a few
branches at a time; a failure is logged, never raised. What one delivery sends is the
same on every forge and written once here, against the `preview.forge.Forge` interface:
the commit status, the `shipyard/evals` status, whatever else the forge shows of an
environment, and the one preview comment on each review request of the branch, found
again by its hidden marker so a restarted controller edits it instead of adding another.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Iterable
from typing import ClassVar

import httpx

from preview.feedback import (
    EVAL_CONTEXT,
    PreviewReport,
    comment_body,
    comment_marker,
    eval_status,
    status_description,
)
from preview.forge import Forge
from preview.forge_http import (
    ForgeAmbiguous,
    ForgeError,
    ForgeHTTP,
    ForgeUnavailable,
    RetryPolicy,
)

# Deliveries for different branches run side by side, but not so many that a push storm
# trips a forge's secondary rate limit on concurrent requests.
MAX_CONCURRENT_DELIVERIES = 4

Key = tuple[str, str]  # (repository, branch)
CommentKey = tuple[str, int, str]  # (repository, review request number, environment)


class ForgeNotifier:
    """`submit` and `note_pull_request` never block and never raise.

    Deliveries run on the event loop `submit` is first called from; `flush` waits for
    them, `close` drops whatever is still queued (flush first for a graceful stop).
    Without a token the notifier does nothing. A subclass per forge names its `kind`.
    """

    kind: ClassVar[type[Forge]]

    def __init__(
        self,
        api_url: str | None = None,
        token: str | None = None,
        *,
        max_attempts: int = 5,
        backoff_base: float = 0.5,
        client: httpx.AsyncClient | None = None,
        policy: RetryPolicy | None = None,
    ) -> None:
        kind = self.kind
        api_url = api_url or kind.default_api_url
        if not api_url:
            raise ValueError(f"{kind.name} has no default API URL: give one")
        self.provider = kind.provider
        self.forge_name = kind.name
        self.log = kind.log
        self._review = kind.review
        self._api_url = api_url
        policy = policy or RetryPolicy(max_attempts=max_attempts, backoff_base=backoff_base)
        # Tokens read from files arrive with a trailing newline, which no header may hold.
        token = (token or "").strip()
        self._forge: Forge | None = None
        self._owns_client = client is None
        self._client = client
        if token:
            self._forge = kind(ForgeHTTP(api_url, kind.auth_headers(token), policy, kind.log))
            self._connect()
        self._disabled_logged = False
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: dict[Key, PreviewReport] = {}
        self._workers: dict[Key, asyncio.Task[None]] = {}
        self._slots = asyncio.Semaphore(MAX_CONCURRENT_DELIVERIES)
        # Webhook handlers may run on other threads than the deliveries.
        self._lock = threading.Lock()
        self._noted: dict[Key, set[int]] = {}
        self._comments: dict[CommentKey, int] = {}

    def __repr__(self) -> str:
        # Spelled out so that no future field (or debugger) shows the token.
        state = "enabled" if self._forge else "disabled"
        return f"{type(self).__name__}({self._api_url!r}, {state})"

    # -- the controller's side -----------------------------------------------------------

    def submit(self, report: PreviewReport) -> None:
        """Queue `report` for delivery, replacing any undelivered one for the same branch."""
        try:
            self._submit(report)
        except Exception:
            self.log.exception(
                "could not queue %s feedback for %s", self.forge_name, report.environment
            )

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
                self.log.debug("%s client closed after its event loop", self.forge_name)

    def note_pull_request(
        self, repository: str, branch: str, number: int, *, from_fork: bool, labels: Iterable[str]
    ) -> None:
        """Remember a pull or merge request (GitLab: `number` is the iid) from a webhook,
        so its comment goes there without asking the forge which requests the branch has.

        Whether a fork's preview gets secrets is not decided here but from the store
        (`controller.reconciler.pr_feedback.secrets_withheld`), which survives restarts;
        `from_fork` and `labels` stay in the call because every forge's webhook brings
        them along with the number.
        """
        del from_fork, labels
        with self._lock:
            self._noted.setdefault((repository, branch), set()).add(number)

    # -- one delivery --------------------------------------------------------------------

    async def _deliver(self, forge: Forge, report: PreviewReport) -> None:
        if report.state != "torn_down":
            success = report.state == "success"
            await self._part(
                "commit status",
                report,
                forge.set_status(
                    report,
                    report.state,
                    status_description(report),
                    target_url=report.url if success else None,
                ),
            )
        evals = eval_status(report)
        if evals is not None:
            state, description = evals
            await self._part(
                "eval status",
                report,
                forge.set_status(
                    report,
                    "success" if state == "success" else "failure",
                    description,
                    target_url=None,
                    context=EVAL_CONTEXT,
                ),
            )
        await self._part("environment", report, forge.show_environment(report))
        await self._part(forge.review + " comment", report, self._comment(forge, report))

    async def _part(self, what: str, report: PreviewReport, call: Awaitable[None]) -> None:
        # One refused part (say, no permission to create deployments) must not cost the
        # reviewer the others; an unreachable forge ends the whole report instead.
        try:
            await call
        except ForgeUnavailable:
            raise
        except ForgeError as error:
            self.log.warning(
                "%s refused the %s for %s at %s: %s",
                self.forge_name,
                what,
                report.environment,
                report.short_sha,
                error,
            )

    async def _comment(self, forge: Forge, report: PreviewReport) -> None:
        create = report.state != "torn_down"
        body = comment_body(report)
        for number in await self._review_numbers(forge, report):
            await self._upsert_comment(forge, report, number, body, create=create)

    async def _review_numbers(self, forge: Forge, report: PreviewReport) -> list[int]:
        with self._lock:
            noted = sorted(self._noted.get((report.repository, report.branch), ()))
        if noted:
            return noted
        # Asked afresh for every report rather than cached: a branch's request can be
        # closed and another opened, and without webhooks nothing else would tell us. A
        # teardown usually follows a merge, which closes the request: look at closed too.
        closed_too = report.state == "torn_down"
        return await forge.review_numbers(report.repository, report.branch, closed_too=closed_too)

    async def _upsert_comment(
        self, forge: Forge, report: PreviewReport, number: int, body: str, *, create: bool
    ) -> None:
        repository = report.repository
        key = (repository, number, report.environment)
        marker = comment_marker(report.environment)
        remembered = self._comments.pop(key, None)
        if remembered is not None and await forge.update_comment(
            repository, number, remembered, body
        ):
            self._comments[key] = remembered
            return
        if await self._adopt_existing(forge, key, marker, body):
            return
        if not create:
            return
        # The forge's retry policy, but on "may have been posted": look before posting
        # again, or a lost response would leave two comments.
        try:
            async for attempt in forge.http.policy.retrying(
                ForgeAmbiguous, self.log, f"comment on {repository}#{number}"
            ):
                with attempt:
                    if attempt.retry_state.attempt_number > 1 and await self._adopt_existing(
                        forge, key, marker, body
                    ):
                        return
                    self._comments[key] = await forge.create_comment(repository, number, body)
        except ForgeAmbiguous as error:
            raise ForgeUnavailable(str(error)) from None

    async def _adopt_existing(self, forge: Forge, key: CommentKey, marker: str, body: str) -> bool:
        repository, number, _ = key
        found = await forge.find_comment(repository, number, marker)
        if found is not None and await forge.update_comment(repository, number, found, body):
            self._comments[key] = found
            return True
        return False

    # -- queueing ------------------------------------------------------------------------

    def _submit(self, report: PreviewReport) -> None:
        if self._forge is None:
            if not self._disabled_logged:
                self._disabled_logged = True
                self.log.info(
                    "no %s token configured: %s feedback is off", self.forge_name, self._review
                )
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
                    "%s feedback needs a running event loop; report dropped", self.forge_name
                )
                return
            # A new loop (the previous one ended): tasks and locks of the old are dead.
            if home is not None:
                self._workers.clear()
                self._slots = asyncio.Semaphore(MAX_CONCURRENT_DELIVERIES)
                if self._owns_client:
                    self._client = None  # its pooled connections died with the old loop
                    self._connect()
            self._loop = home = running
        if running is home:
            self._enqueue(report)
        else:
            # Called from another thread: the queue belongs to the delivery loop.
            home.call_soon_threadsafe(self._enqueue, report)

    def _connect(self) -> None:
        assert self._forge is not None  # only connected when enabled
        if self._client is None:
            # Each attempt's timeout is the retry policy's: see `ForgeHTTP`.
            self._client = httpx.AsyncClient()
        self._forge.http.bind(self._client)

    def _enqueue(self, report: PreviewReport) -> None:
        key = (report.repository, report.branch)
        self._pending[key] = report
        if key not in self._workers:
            name = f"{self.provider}-feedback:{report.repository}:{report.branch}"
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
        forge = self._forge
        assert forge is not None  # only queued when enabled
        try:
            await self._deliver(forge, report)
        except ForgeUnavailable as error:
            self.log.warning(
                "%s feedback for %s at %s not delivered: %s",
                self.forge_name,
                report.environment,
                report.short_sha,
                error,
            )
        except Exception:
            self.log.exception("%s feedback for %s failed", self.forge_name, report.environment)
