"""Gitea and Forgejo as a `preview.forge.Forge`: a commit status and one comment per pull request.

Gitea's API v1 (Forgejo keeps it) follows GitHub's shapes closely: commit statuses with a
`context`, pull requests whose comments are issue comments. It differs where it matters
here: the token goes as `Authorization: token …`, pull requests cannot be filtered by
head branch (they are listed and filtered here), pages are `page` and `limit` (an
issue's comments come all at once), and a comment is edited with PATCH on
`issues/comments/{id}`. There is no public default host: the API URL is always given
(`https://HOST/api/v1`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, TypedDict, cast

from preview.delivery import ForgeNotifier
from preview.feedback import PreviewReport
from preview.forge import PREVIEW_CONTEXT, Forge, StatusState
from preview.forge_http import decode, integer, unless_gone

log = logging.getLogger("shipyard.gitea")

# Gitea's largest page by default (`MAX_RESPONSE_ITEMS`); more are not worth reading.
PAGE_SIZE = 50
MAX_PAGES = 20


class _RepoJSON(TypedDict):
    full_name: str


class _RefJSON(TypedDict):
    ref: str
    repo: _RepoJSON | None  # None when the fork was deleted


class _PullJSON(TypedDict):
    number: int
    head: _RefJSON
    base: _RefJSON


class _CommentJSON(TypedDict):
    id: int
    body: str | None


class GiteaForge(Forge):
    """A Gitea or Forgejo server's `/api/v1`."""

    provider = "gitea"
    name = "Gitea"
    review = "pull request"
    default_api_url = None
    log = log

    @staticmethod
    def auth_headers(token: str) -> Mapping[str, str]:
        return {"Authorization": f"token {token}", "Accept": "application/json"}

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

    async def review_numbers(self, repository: str, branch: str, *, closed_too: bool) -> list[int]:
        state = "all" if closed_too else "open"
        numbers: list[int] = []
        for page in range(1, MAX_PAGES + 1):
            params = {"state": state, "page": str(page), "limit": str(PAGE_SIZE)}
            response = await self.http.request("GET", f"/repos/{repository}/pulls", params=params)
            pulls = decode(response, lambda data: [cast(_PullJSON, pull) for pull in data])
            numbers += [
                integer(pull["number"])
                for pull in pulls
                if pull["head"]["ref"] == branch and _own(pull, repository)
            ]
            if len(pulls) < PAGE_SIZE:
                break
        return sorted(numbers)

    async def find_comment(self, repository: str, number: int, marker: str) -> int | None:
        # Gitea lists an issue's comments all at once, oldest first: it has no pages here.
        path = f"/repos/{repository}/issues/{number}/comments"
        response = await self.http.request("GET", path)
        for comment, body in decode(response, lambda data: [_comment(item) for item in data]):
            # At the start only: a reviewer quoting our comment must not be mistaken for it.
            if body.startswith(marker):
                return comment
        return None

    async def update_comment(self, repository: str, number: int, comment: int, body: str) -> bool:
        path = f"/repos/{repository}/issues/comments/{comment}"
        return await unless_gone(self.http.request("PATCH", path, json={"body": body}))

    async def create_comment(self, repository: str, number: int, body: str) -> int:
        path = f"/repos/{repository}/issues/{number}/comments"
        response = await self.http.request("POST", path, json={"body": body}, idempotent=False)
        return decode(response, lambda data: integer(data["id"]))


class GiteaNotifier(ForgeNotifier):
    """Pull request feedback on Gitea or Forgejo; see `preview.delivery.ForgeNotifier`."""

    kind = GiteaForge


def _own(pull: _PullJSON, repository: str) -> bool:
    """From a branch of the repository itself: a fork's same-named branch is someone else's."""
    head = pull["head"]["repo"]
    return head is not None and head["full_name"].casefold() == repository.casefold()


def _comment(data: object) -> tuple[int, str]:
    raw = cast(_CommentJSON, data)
    body = raw.get("body")
    return integer(raw["id"]), body if isinstance(body, str) else ""
