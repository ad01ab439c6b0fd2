"""Gitea and Forgejo as a `preview.forge.Forge`: a commit status and one comment per pull request.

Gitea's API v1 (Forgejo keeps it) follows GitHub's shapes closely: commit statuses with a
`context`, pull request comments that are issue comments, edited with PATCH by their id
(`GitHubShapedForge` makes those calls for both). It differs where it matters here: the
token goes as `Authorization: token …`, pull requests cannot be filtered by head branch
(they are listed and filtered here), pages are `page` and `limit`, and an issue's
comments come all at once. There is no public default host: the API URL is always
given (`https://HOST/api/v1`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TypedDict, cast

from preview.delivery import ForgeNotifier
from preview.forge_http import decode, integer
from preview.github import GitHubShapedForge, comment_of

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


class GiteaForge(GitHubShapedForge):
    """A Gitea or Forgejo server's `/api/v1`."""

    provider = "gitea"
    name = "Gitea"
    review = "pull request"
    default_api_url = None
    log = log

    @staticmethod
    def auth_headers(token: str) -> Mapping[str, str]:
        return {"Authorization": f"token {token}", "Accept": "application/json"}

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
        for comment, body in decode(response, lambda data: [comment_of(item) for item in data]):
            # At the start only: a reviewer quoting our comment must not be mistaken for it.
            if body.startswith(marker):
                return comment
        return None


class GiteaNotifier(ForgeNotifier):
    """Pull request feedback on Gitea or Forgejo; see `preview.delivery.ForgeNotifier`."""

    kind = GiteaForge


def _own(pull: _PullJSON, repository: str) -> bool:
    """From a branch of the repository itself: a fork's same-named branch is someone else's."""
    head = pull["head"]["repo"]
    return head is not None and head["full_name"].casefold() == repository.casefold()
