"""GitHub as a `preview.forge.Forge`: commit statuses, Deployments, one comment per pull request.

Reviewers should not have to open Shipyard to learn whether a push deployed and where it
runs. What a report sends and how it is queued and retried is the same on every forge
(`preview.delivery`, `preview.forge_http`); this adapter knows GitHub's REST v3 paths and
shapes, and the one thing only GitHub shows: a Deployment per commit of an environment,
whose status carries the preview's URL. The deployment of a commit is found again by
asking GitHub, so a restarted controller edits what exists instead of adding to it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any, TypedDict, cast

from preview import remotes
from preview.delivery import ForgeNotifier
from preview.environments import is_production
from preview.feedback import PreviewReport, status_description
from preview.forge import PREVIEW_CONTEXT, Forge, StatusState
from preview.forge_http import ForgeHTTP, decode, integer, next_page, unless_gone

log = logging.getLogger("shipyard.github")

DEFAULT_API_URL = "https://api.github.com"
API_VERSION = "2022-11-28"
# 20 pages of 100: a pull request with more comments than that is not worth reading all of.
MAX_COMMENT_PAGES = 20

_DEPLOYMENT_STATE = {"pending": "in_progress", "success": "success", "failure": "failure"}


class _CommentJSON(TypedDict):
    id: int
    body: str | None


class GitHubShapedForge(Forge):
    """The calls GitHub's REST v3 and Gitea's API v1 (Forgejo's too) shape alike:
    commit statuses with a `context`, and pull request comments that are issue comments,
    posted under the issue and edited by their own id."""

    async def set_status(
        self,
        report: PreviewReport,
        state: StatusState,
        description: str,
        *,
        target_url: str | None,
        context: str = PREVIEW_CONTEXT,
    ) -> None:
        body: dict[str, Any] = {"state": state, "context": context, "description": description}
        if target_url:
            body["target_url"] = target_url
        path = f"/repos/{report.repository}/statuses/{report.sha}"
        await self.http.request("POST", path, json=body)

    async def update_comment(self, repository: str, number: int, comment: int, body: str) -> bool:
        path = f"/repos/{repository}/issues/comments/{comment}"
        return await unless_gone(self.http.request("PATCH", path, json={"body": body}))

    async def create_comment(self, repository: str, number: int, body: str) -> int:
        path = f"/repos/{repository}/issues/{number}/comments"
        response = await self.http.request("POST", path, json={"body": body}, idempotent=False)
        return decode(response, _id)


class GitHubForge(GitHubShapedForge):
    """GitHub.com or an Enterprise server's `/api/v3`."""

    provider = "github"
    name = "GitHub"
    review = "pull request"
    default_api_url = DEFAULT_API_URL
    log = log

    def __init__(self, http: ForgeHTTP) -> None:
        super().__init__(http)
        # Per (repository, environment): the newest commit's deployment, and the one
        # whose version serves (the last success). Bounded by the live environments.
        self._deployments: dict[tuple[str, str], tuple[str, int]] = {}
        self._serving: dict[tuple[str, str], int] = {}

    @staticmethod
    def auth_headers(token: str) -> Mapping[str, str]:
        return {
            "Authorization": f"Bearer {token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
        }

    async def review_numbers(self, repository: str, branch: str, *, closed_too: bool) -> list[int]:
        owner = repository.split("/", 1)[0]
        state = "all" if closed_too else "open"
        params = {"head": f"{owner}:{branch}", "state": state, "per_page": "100"}
        response = await self.http.request("GET", f"/repos/{repository}/pulls", params=params)
        # `head=owner:branch` names the repository's own branch: a fork's is never listed.
        return sorted(decode(response, lambda data: [_number(item) for item in data]))

    async def find_comment(self, repository: str, number: int, marker: str) -> int | None:
        url: str | None = f"/repos/{repository}/issues/{number}/comments"
        params: dict[str, str] | None = {"per_page": "100"}
        for _ in range(MAX_COMMENT_PAGES):
            if url is None:
                break
            response = await self.http.request("GET", url, params=params)
            for comment, body in decode(response, lambda data: [comment_of(c) for c in data]):
                # At the start only: a reviewer quoting our comment must not be mistaken
                # for it (and we could not edit theirs anyway).
                if body.startswith(marker):
                    return comment
            url, params = next_page(response), None
            if url is not None and not self.http.same_origin(url):
                # The token goes wherever we follow; only ever to the configured API.
                log.warning("not following a comments page link to another host")
                break
        return None

    # -- deployments ---------------------------------------------------------------------

    async def show_environment(self, report: PreviewReport) -> None:
        key = (report.repository, report.environment)
        description = status_description(report)
        if report.state == "torn_down":
            self._deployments.pop(key, None)
            serving = self._serving.pop(key, None)
            if serving is None:
                serving = await self._find_deployment(report.repository, report.environment, None)
            if serving is not None:
                await self._deployment_status(report, serving, "inactive", description)
            return

        deployment = await self._deployment_of(report)
        success = report.state == "success"
        await self._deployment_status(
            report,
            deployment,
            _DEPLOYMENT_STATE[report.state],
            description,
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
            await self._deployment_status(
                report, superseded, "inactive", f"Superseded by {report.short_sha}"
            )

    async def _deployment_of(self, report: PreviewReport) -> int:
        """The deployment of the report's commit: remembered, found on GitHub, or created."""
        key = (report.repository, report.environment)
        known = self._deployments.get(key)
        if known is not None and known[0] == report.sha:
            return known[1]
        found = await self._find_deployment(report.repository, report.environment, report.sha)
        if found is None:
            production = is_production(report.environment)
            body = {
                "ref": report.sha,
                "environment": report.environment,
                "description": f"Shipyard {report.environment} at {report.short_sha}",
                # Merging the default branch into a preview's head is not ours to do.
                "auto_merge": False,
                # Without it GitHub refuses (409) while our own status is still pending.
                "required_contexts": [],
                "transient_environment": not production,
                "production_environment": production,
            }
            path = f"/repos/{report.repository}/deployments"
            found = decode(await self.http.request("POST", path, json=body), _id)
        self._deployments[key] = (report.sha, found)
        return found

    async def _find_deployment(
        self, repository: str, environment: str, sha: str | None
    ) -> int | None:
        """The newest deployment of `environment` (at `sha` when given), if there is one."""
        params = {"environment": environment, "per_page": "1"}
        if sha:
            params["sha"] = sha
        response = await self.http.request("GET", f"/repos/{repository}/deployments", params=params)
        items = decode(response, lambda data: [_id(item) for item in data])
        return items[0] if items else None

    async def _deployment_status(
        self,
        report: PreviewReport,
        deployment: int,
        state: str,
        description: str,
        *,
        environment_url: str | None = None,
    ) -> None:
        body: dict[str, Any] = {"state": state, "description": description}
        if environment_url:
            body["environment_url"] = environment_url
        path = f"/repos/{report.repository}/deployments/{deployment}/statuses"
        await self.http.request("POST", path, json=body)


class GitHubNotifier(ForgeNotifier):
    """Pull request feedback on GitHub; see `preview.delivery.ForgeNotifier`."""

    kind = GitHubForge


def _number(data: object) -> int:
    return integer(cast(dict[str, object], data)["number"])


def _id(data: object) -> int:
    return integer(cast(dict[str, object], data)["id"])


def comment_of(data: object) -> tuple[int, str]:
    """A comment's id and body (empty when it has none) from GitHub-shaped JSON."""
    body = cast(_CommentJSON, data).get("body")
    return _id(data), body if isinstance(body, str) else ""


_OWNER = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?")
_NAME = re.compile(r"[A-Za-z0-9._-]+")


def repository_from_remote(url: str) -> str | None:
    """The `owner/name` of a GitHub (or GitHub Enterprise, or Gitea) remote URL, else None.

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
