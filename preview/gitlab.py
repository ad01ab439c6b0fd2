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
from collections.abc import Awaitable

import httpx

from preview.delivery import TRUSTED_LABEL, QueuedNotifier
from preview.feedback import (
    EVAL_CONTEXT,
    AgentReport,
    PreviewReport,
    comment_body,
    comment_marker,
    eval_status,
    status_description,
)
from preview.gitlab_api import (
    GitLabAmbiguous,
    GitLabAPI,
    GitLabError,
    GitLabRejected,
    GitLabUnavailable,
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

# GitLab's commit status states: pending means "queued", running is what a deploy in
# progress looks like in the MR widget.
_COMMIT_STATE = {"pending": "running", "success": "success", "failure": "failed"}


class GitLabNotifier(QueuedNotifier[GitLabAPI]):
    """Delivers `PreviewReport`s to GitLab in the background; see the module docstring
    and `preview.delivery.QueuedNotifier` for the queueing contract."""

    forge = "GitLab"
    review = "merge request"
    unavailable = GitLabUnavailable
    log = log

    def __init__(
        self,
        api_url: str = DEFAULT_API_URL,
        token: str | None = None,
        *,
        max_attempts: int = 5,
        backoff_base: float = 0.5,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(
            api_url, token, max_attempts=max_attempts, backoff_base=backoff_base, client=client
        )
        self._notes: dict[tuple[str, int, str], int] = {}  # (repo, MR iid, environment)

    def _make_api(
        self, client: httpx.AsyncClient, max_attempts: int, backoff_base: float
    ) -> GitLabAPI:
        return GitLabAPI(
            self._api_url, self._token, client, max_attempts=max_attempts, backoff_base=backoff_base
        )

    # -- delivery ------------------------------------------------------------------------

    async def _deliver(self, api: GitLabAPI, report: PreviewReport) -> None:
        if report.state != "torn_down":
            await _part("commit status", report, self._commit_status(api, report))
        if eval_status(report) is not None:
            await _part("eval status", report, self._eval_status(api, report))
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

    async def _eval_status(self, api: GitLabAPI, report: PreviewReport) -> None:
        state, description = eval_status(report) or ("pending", "")
        try:
            await api.create_status(
                report.repository,
                report.sha,
                state=_COMMIT_STATE[state],
                ref=report.branch,
                description=description,
                target_url=None,
                name=EVAL_CONTEXT,
            )
        except GitLabRejected as error:
            if error.status == 400 and "transition" in error.detail.lower():
                return  # the same result again: GitLab keeps the one it has
            raise

    async def _note(self, api: GitLabAPI, report: PreviewReport) -> None:
        create = report.state != "torn_down"
        body = comment_body(report)
        for iid in await self._merge_request_iids(api, report):
            await self._upsert_note(api, report, iid, body, create=create)

    async def _merge_request_iids(self, api: GitLabAPI, report: PreviewReport) -> list[int]:
        noted = self._noted_numbers(report)
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
