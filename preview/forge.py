"""The one interface pull-request feedback talks to, whatever the forge.

Everything a reviewer sees from Shipyard comes down to a few calls: a commit status,
the review requests (pull requests, merge requests) of a branch, and the one preview
comment on each, found again by its hidden marker and edited in place. GitHub, GitLab
and Gitea/Forgejo implement these as thin adapters over `preview.forge_http`, which
owns the retry policy; `preview.delivery` holds the queue and the comment logic once.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import ClassVar, Literal

from preview.feedback import PreviewReport
from preview.forge_http import ForgeHTTP

StatusState = Literal["pending", "success", "failure"]
PREVIEW_CONTEXT = "shipyard/preview"


class Forge(ABC):
    """One forge's API as feedback needs it; every call may raise `forge_http.ForgeError`."""

    provider: ClassVar[str]  # "github": the webhook provider whose numbers it understands
    name: ClassVar[str]  # "GitHub", for messages
    review: ClassVar[str]  # "pull request", for messages
    default_api_url: ClassVar[str | None]  # None: self-hosted only, no URL to assume
    log: ClassVar[logging.Logger]

    def __init__(self, http: ForgeHTTP) -> None:
        self.http = http

    @staticmethod
    @abstractmethod
    def auth_headers(token: str) -> Mapping[str, str]:
        """The headers that carry `token`: the only place it ever goes."""

    @abstractmethod
    async def set_status(
        self,
        report: PreviewReport,
        state: StatusState,
        description: str,
        *,
        target_url: str | None,
        context: str = PREVIEW_CONTEXT,
    ) -> None:
        """Set the commit status `context` of the report's commit; the same state again
        is not an error."""

    @abstractmethod
    async def review_numbers(self, repository: str, branch: str, *, closed_too: bool) -> list[int]:
        """Pull or merge requests from `branch` of the repository itself (never a fork's
        same-named branch), by the number the forge shows (GitLab: the iid)."""

    @abstractmethod
    async def find_comment(self, repository: str, number: int, marker: str) -> int | None:
        """The id of the comment on request `number` whose body starts with `marker`."""

    @abstractmethod
    async def update_comment(self, repository: str, number: int, comment: int, body: str) -> bool:
        """Replace a comment's body; False when it no longer exists (someone deleted it)."""

    @abstractmethod
    async def create_comment(self, repository: str, number: int, body: str) -> int:
        """Post a new comment. Raises `ForgeAmbiguous` when it may already exist."""

    async def show_environment(self, report: PreviewReport) -> None:  # noqa: B027 - optional
        """Whatever else the forge shows of a preview (GitHub: its Deployments).

        Nothing by default: GitLab ties environments to pipelines and Gitea has none.
        """
