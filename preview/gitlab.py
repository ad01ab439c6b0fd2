"""Preview feedback on GitLab merge requests: a commit status and one note.

The GitLab twin of `preview.github.GitHubNotifier`, with the same public methods and
semantics, so the controller can hold either: `submit` queues a report and returns at
once, delivery happens on a background task (a burst for one branch collapses into its
newest), and a slow or absent GitLab never holds up a deployment.

The merge request note is found again by the same hidden marker the GitHub comment
carries, so a restarted controller edits its note instead of adding another.
GitLab has no Deployments counterpart worth the trouble here (environments are tied to
pipelines), so a report is a commit status plus the note.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Iterable

import httpx

from preview.feedback import (
    AgentReport,
    PreviewReport,
    comment_body,
    comment_marker,
    status_description,
)
from preview.gitlab_api import (
    GitLabAmbiguous,
    GitLabAPI,
    GitLabError,
    GitLabRejected,
    GitLabUnavailable,
    MergeRequest,
)

__all__ = [
    "DEFAULT_API_URL",
    "TRUSTED_LABEL",
    "AgentReport",
    "GitLabNotifier",
    "PreviewReport",
]

log = logging.getLogger("shipyard.gitlab")

DEFAULT_API_URL = "https://gitlab.com/api/v4"
TRUSTED_LABEL = "shipyard:trusted"
REQUEST_TIMEOUT = 10.0
MAX_CONCURRENT_DELIVERIES = 4

# GitLab's commit status states: pending means "queued", running is what a deploy in
# progress looks like in the MR widget.
_COMMIT_STATE = {"pending": "running", "success": "success", "failure": "failed"}

_Key = tuple[str, str]  # (repository, branch)


class GitLabNotifier:
    """Delivers `PreviewReport`s to GitLab in the background; see the module docstring.

    `submit`, `note_pull_request` and `secrets_allowed` never block and never raise.
    Deliveries run on the event loop `submit` is first called from; `flush` waits for
    them, `close` drops whatever is still queued (flush first for a graceful stop).
    Without a token the notifier does nothing but remember merge requests.
    """

    def __init__(
        self,
        api_url: str = DEFAULT_API_URL,
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
        self._api: GitLabAPI | None = None
        if self._token:
            self._api = self._connect()
        self._disabled_logged = False
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: dict[_Key, PreviewReport] = {}
        self._workers: dict[_Key, asyncio.Task[None]] = {}
        self._slots = asyncio.Semaphore(MAX_CONCURRENT_DELIVERIES)
        # Webhook handlers may run on other threads than the deliveries.
        self._lock = threading.Lock()
        self._merge_requests: dict[_Key, dict[int, MergeRequest]] = {}
        self._notes: dict[tuple[str, int, str], int] = {}  # (repo, MR iid, environment)

    def __repr__(self) -> str:
        # Spelled out so that no future field (or debugger) shows the token.
        state = "enabled" if self._api else "disabled"
        return f"GitLabNotifier({self._api_url!r}, {state})"

    # -- the controller's side -----------------------------------------------------------

    def submit(self, report: PreviewReport) -> None:
        """Queue `report` for delivery, replacing any undelivered one for the same branch."""
        try:
            self._submit(report)
        except Exception:
            log.exception("could not queue GitLab feedback for %s", report.environment)

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
                log.debug("GitLab client closed after its event loop")

    def note_pull_request(
        self, repository: str, branch: str, number: int, *, from_fork: bool, labels: Iterable[str]
    ) -> None:
        """Remember a merge request (`number` is its iid) from a merge request hook.

        Call it for every action: the labels given replace the ones remembered, so
        removing the trusted label takes effect. `branch` is the name the controller
        deploys the MR's source under.
        """
        merge_request = MergeRequest(
            iid=number,
            from_fork=from_fork,
            labels=frozenset(label.casefold() for label in labels),
        )
        with self._lock:
            self._merge_requests.setdefault((repository, branch), {})[number] = merge_request

    def secrets_allowed(
        self, repository: str, branch: str, trusted_label: str = TRUSTED_LABEL
    ) -> bool:
        """Whether the preview of `branch` may receive the agents' secrets.

        A branch with any merge request from a fork (a different source project) gets
        secrets only once a maintainer has put `trusted_label` on it; a branch with no
        merge request known was pushed to the project itself.
        """
        label = trusted_label.casefold()
        with self._lock:
            known = list(self._merge_requests.get((repository, branch), {}).values())
        return all(not mr.from_fork or label in mr.labels for mr in known)

    # -- queueing ------------------------------------------------------------------------

    def _submit(self, report: PreviewReport) -> None:
        if self._api is None:
            if not self._disabled_logged:
                self._disabled_logged = True
                log.info("no GitLab token configured: merge request feedback is off")
            return
        if self._closed:
            log.debug("notifier closed; dropped report for %s", report.environment)
            return
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        home = self._loop
        if home is None or home.is_closed():
            if running is None:
                log.warning("GitLab feedback needs a running event loop; report dropped")
                return
            # A new loop (the previous one ended): tasks and locks of the old are dead.
            if home is not None:
                self._workers.clear()
                self._slots = asyncio.Semaphore(MAX_CONCURRENT_DELIVERIES)
                if self._owns_client:
                    self._client = None
                    self._api = self._connect()
            self._loop = home = running
        if running is home:
            self._enqueue(report)
        else:
            home.call_soon_threadsafe(self._enqueue, report)

    def _connect(self) -> GitLabAPI:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=REQUEST_TIMEOUT)
        max_attempts, backoff_base = self._settings
        return GitLabAPI(
            self._api_url,
            self._token,
            self._client,
            max_attempts=max_attempts,
            backoff_base=backoff_base,
        )

    def _enqueue(self, report: PreviewReport) -> None:
        key = (report.repository, report.branch)
        self._pending[key] = report
        if key not in self._workers:
            self._workers[key] = asyncio.get_running_loop().create_task(
                self._drain(key), name=f"gitlab-feedback:{report.repository}:{report.branch}"
            )

    async def _drain(self, key: _Key) -> None:
        try:
            while key in self._pending:
                async with self._slots:
                    report = self._pending.pop(key, None)
                    if report is not None:
                        await self._deliver_safely(report)
        finally:
            self._workers.pop(key, None)

    async def _deliver_safely(self, report: PreviewReport) -> None:
        try:
            await self._deliver(report)
        except GitLabUnavailable as error:
            log.warning(
                "GitLab feedback for %s at %s not delivered: %s",
                report.environment,
                report.short_sha,
                error,
            )
        except Exception:
            log.exception("GitLab feedback for %s failed", report.environment)

    # -- delivery ------------------------------------------------------------------------

    async def _deliver(self, report: PreviewReport) -> None:
        api = self._api
        assert api is not None  # only queued when enabled
        if report.state != "torn_down":
            await _part("commit status", report, self._commit_status(api, report))
        await _part("merge request note", report, self._note(api, report))

    async def _commit_status(self, api: GitLabAPI, report: PreviewReport) -> None:
        try:
            await api.create_status(
                report.repository,
                report.sha,
                state=_COMMIT_STATE[report.state],
                ref=report.branch,
                description=status_description(report),
                target_url=report.url if report.state == "success" else None,
            )
        except GitLabRejected as error:
            # GitLab refuses to "move" a status to the state it already has (say, the
            # same success reported again after a restart): nothing is lost.
            if error.status == 400 and "transition" in error.detail.lower():
                log.debug("commit status of %s unchanged: %s", report.short_sha, error)
                return
            raise

    async def _note(self, api: GitLabAPI, report: PreviewReport) -> None:
        create = report.state != "torn_down"
        body = comment_body(report)
        for iid in await self._merge_request_iids(api, report):
            await self._upsert_note(api, report, iid, body, create=create)

    async def _merge_request_iids(self, api: GitLabAPI, report: PreviewReport) -> list[int]:
        with self._lock:
            noted = sorted(self._merge_requests.get((report.repository, report.branch), {}))
        if noted:
            return noted
        # Asked afresh each time: an MR can be closed and another opened. A teardown
        # usually follows a merge, which closes the MR: look at all of them then.
        state = "all" if report.state == "torn_down" else "opened"
        found = await api.merge_requests_from_branch(report.repository, report.branch, state=state)
        return sorted(mr.iid for mr in found)

    async def _upsert_note(
        self, api: GitLabAPI, report: PreviewReport, iid: int, body: str, *, create: bool
    ) -> None:
        repository = report.repository
        key = (repository, iid, report.environment)
        marker = comment_marker(report.environment)
        remembered = self._notes.pop(key, None)
        if remembered is not None and await api.update_note(repository, iid, remembered, body):
            self._notes[key] = remembered
            return
        if await self._adopt_existing(api, key, marker, body):
            return
        if not create:
            return
        for attempt in range(1, api.max_attempts + 1):
            try:
                self._notes[key] = await api.create_note(repository, iid, body)
            except GitLabAmbiguous as error:
                # The note may exist now; posting again blindly could make two.
                if attempt == api.max_attempts:
                    raise GitLabUnavailable(str(error)) from None
                await asyncio.sleep(api.backoff(attempt))
                if await self._adopt_existing(api, key, marker, body):
                    return
            else:
                return

    async def _adopt_existing(
        self, api: GitLabAPI, key: tuple[str, int, str], marker: str, body: str
    ) -> bool:
        repository, iid, _ = key
        found = await api.find_note(repository, iid, marker)
        if found is not None and await api.update_note(repository, iid, found, body):
            self._notes[key] = found
            return True
        return False


async def _part(what: str, report: PreviewReport, call: Awaitable[None]) -> None:
    # One refused part must not cost the reviewer the other; an unreachable GitLab
    # ends the whole report instead.
    try:
        await call
    except GitLabUnavailable:
        raise
    except GitLabError as error:
        log.warning(
            "GitLab refused the %s for %s at %s: %s",
            what,
            report.environment,
            report.short_sha,
            error,
        )
