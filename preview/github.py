"""Preview feedback on GitHub pull requests: a commit status, a Deployment, one comment.

Reviewers should not have to open Shipyard to learn whether a push deployed and where it
runs. The controller hands each state change of a preview to `GitHubNotifier.submit` and
moves on: delivery happens on a background task, so a slow or absent GitHub never holds
up a deployment, and a burst of reports for one branch collapses into its newest, so
GitHub shows where the branch is now rather than replaying where it was.

Everything GitHub shows is kept idempotent across controller restarts: the pull request
comment is found again by a hidden marker, and the deployment of a commit by asking
GitHub, so a restarted controller edits what exists instead of adding to it.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable

import httpx

from preview import remotes
from preview.delivery import TRUSTED_LABEL, QueuedNotifier
from preview.environments import is_production
from preview.feedback import (
    EVAL_CONTEXT,
    AgentReport,
    PreviewReport,
    comment_body,
    comment_marker,
    eval_status,
    status_description,
)
from preview.github_api import (
    GitHubAmbiguous,
    GitHubAPI,
    GitHubError,
    GitHubUnavailable,
)

__all__ = [
    "DEFAULT_API_URL",
    "TRUSTED_LABEL",
    "AgentReport",
    "GitHubNotifier",
    "PreviewReport",
    "repository_from_remote",
]

log = logging.getLogger("shipyard.github")

DEFAULT_API_URL = "https://api.github.com"

_COMMIT_STATE = {"pending": "pending", "success": "success", "failure": "failure"}
_DEPLOYMENT_STATE = {"pending": "in_progress", "success": "success", "failure": "failure"}


class GitHubNotifier(QueuedNotifier[GitHubAPI]):
    """Delivers `PreviewReport`s to GitHub in the background; see the module docstring
    and `preview.delivery.QueuedNotifier` for the queueing contract."""

    forge = "GitHub"
    review = "pull request"
    unavailable = GitHubUnavailable
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
        self._comments: dict[tuple[str, int, str], int] = {}  # (repo, PR, environment)
        # Per (repository, environment): the newest commit's deployment, and the one
        # whose version serves (the last success). Bounded by the live environments.
        self._deployments: dict[tuple[str, str], tuple[str, int]] = {}
        self._serving: dict[tuple[str, str], int] = {}

    def _make_api(
        self, client: httpx.AsyncClient, max_attempts: int, backoff_base: float
    ) -> GitHubAPI:
        return GitHubAPI(
            self._api_url, self._token, client, max_attempts=max_attempts, backoff_base=backoff_base
        )

    # -- delivery ------------------------------------------------------------------------

    async def _deliver(self, api: GitHubAPI, report: PreviewReport) -> None:
        if report.state != "torn_down":
            await _part("commit status", report, self._commit_status(api, report))
        if eval_status(report) is not None:
            await _part("eval status", report, self._eval_status(api, report))
        await _part("deployment", report, self._deployment(api, report))
        await _part("comment", report, self._comment(api, report))

    async def _commit_status(self, api: GitHubAPI, report: PreviewReport) -> None:
        await api.create_status(
            report.repository,
            report.sha,
            state=_COMMIT_STATE[report.state],
            description=status_description(report),
            target_url=report.url if report.state == "success" else None,
        )

    async def _eval_status(self, api: GitHubAPI, report: PreviewReport) -> None:
        state, description = eval_status(report) or ("pending", "")
        await api.create_status(
            report.repository,
            report.sha,
            state=state,
            description=description,
            target_url=None,
            context=EVAL_CONTEXT,
        )

    async def _deployment(self, api: GitHubAPI, report: PreviewReport) -> None:
        key = (report.repository, report.environment)
        description = status_description(report)
        if report.state == "torn_down":
            self._deployments.pop(key, None)
            serving = self._serving.pop(key, None)
            if serving is None:
                serving = await api.find_deployment(report.repository, report.environment, None)
            if serving is not None:
                await api.create_deployment_status(
                    report.repository, serving, state="inactive", description=description
                )
            return

        deployment = await self._deployment_of(api, report)
        success = report.state == "success"
        await api.create_deployment_status(
            report.repository,
            deployment,
            state=_DEPLOYMENT_STATE[report.state],
            description=description,
            environment_url=report.url if success else None,
        )
        if not success:
            # A failed commit leaves the previous version serving, so its deployment stays.
            return
        superseded = self._serving.get(key)
        self._serving[key] = deployment
        if superseded is not None and superseded != deployment:
            # GitHub's auto_inactive skips transient environments, so the previous
            # commit's deployment would otherwise keep offering its stale link.
            await api.create_deployment_status(
                report.repository,
                superseded,
                state="inactive",
                description=f"Superseded by {report.short_sha}",
            )

    async def _deployment_of(self, api: GitHubAPI, report: PreviewReport) -> int:
        """The deployment of the report's commit: remembered, found on GitHub, or created."""
        key = (report.repository, report.environment)
        known = self._deployments.get(key)
        if known is not None and known[0] == report.sha:
            return known[1]
        found = await api.find_deployment(report.repository, report.environment, report.sha)
        if found is None:
            found = await api.create_deployment(
                report.repository,
                report.sha,
                report.environment,
                production=is_production(report.environment),
                description=f"Shipyard {report.environment} at {report.short_sha}",
            )
        self._deployments[key] = (report.sha, found)
        return found

    async def _comment(self, api: GitHubAPI, report: PreviewReport) -> None:
        create = report.state != "torn_down"
        body = comment_body(report)
        for number in await self._pull_numbers(api, report):
            await self._upsert_comment(api, report, number, body, create=create)

    async def _pull_numbers(self, api: GitHubAPI, report: PreviewReport) -> list[int]:
        noted = self._noted_numbers(report)
        if noted:
            return noted
        # Asked afresh for every report rather than cached: a branch's pull request can
        # be closed and another opened, and without webhooks nothing else would tell us.
        # A teardown usually follows a merge, which closes the PR: look at closed ones too.
        state = "all" if report.state == "torn_down" else "open"
        pulls = await api.pulls_from_branch(report.repository, report.branch, state=state)
        return sorted(pull.number for pull in pulls)

    async def _upsert_comment(
        self, api: GitHubAPI, report: PreviewReport, number: int, body: str, *, create: bool
    ) -> None:
        repository = report.repository
        key = (repository, number, report.environment)
        marker = comment_marker(report.environment)
        remembered = self._comments.pop(key, None)
        if remembered is not None and await api.update_comment(repository, remembered, body):
            self._comments[key] = remembered
            return
        if await self._adopt_existing(api, key, marker, body):
            return
        if not create:
            return
        for attempt in range(1, api.max_attempts + 1):
            try:
                self._comments[key] = await api.create_comment(repository, number, body)
            except GitHubAmbiguous as error:
                # The comment may exist now; posting again blindly could make two.
                if attempt == api.max_attempts:
                    raise GitHubUnavailable(str(error)) from None
                await asyncio.sleep(api.backoff(attempt))
                if await self._adopt_existing(api, key, marker, body):
                    return
            else:
                return

    async def _adopt_existing(
        self, api: GitHubAPI, key: tuple[str, int, str], marker: str, body: str
    ) -> bool:
        repository, number, _ = key
        found = await api.find_comment(repository, number, marker)
        if found is not None and await api.update_comment(repository, found, body):
            self._comments[key] = found
            return True
        return False


async def _part(what: str, report: PreviewReport, call: Awaitable[None]) -> None:
    # One refused part (say, no permission to create deployments) must not cost the
    # reviewer the others; an unreachable GitHub ends the whole report instead.
    try:
        await call
    except GitHubUnavailable:
        raise
    except GitHubError as error:
        log.warning(
            "GitHub refused the %s for %s at %s: %s",
            what,
            report.environment,
            report.short_sha,
            error,
        )


_OWNER = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?")
_NAME = re.compile(r"[A-Za-z0-9._-]+")


def repository_from_remote(url: str) -> str | None:
    """The `owner/name` of a GitHub (or GitHub Enterprise) remote URL, else None.

    Accepts `https://host/o/n(.git)`, `ssh://[user@]host[:port]/o/n` and
    `[user@]host:o/n`; local paths, `file://` and paths of any other depth (GitLab
    subgroups, say) are not GitHub repositories.
    """
    segments = remotes.path_segments(url)
    if segments is None or len(segments) != 2:
        return None
    owner, name = segments
    if not _OWNER.fullmatch(owner) or not _NAME.fullmatch(name) or name in {".", ".."}:
        return None
    return f"{owner}/{name}"
