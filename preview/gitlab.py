"""GitLab as a `preview.forge.Forge`: a commit status and one note per merge request.

Projects are addressed by their URL-encoded path (`group%2Fname`), which GitLab accepts
wherever it takes a numeric project id; the token travels in the `PRIVATE-TOKEN` header.
GitLab has no Deployments counterpart worth the trouble here (environments are tied to
pipelines), so a report is a commit status plus the note. Queueing, retries and the
note's create-or-update are shared with every forge (`preview.delivery`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, TypedDict, cast
from urllib.parse import quote

from preview.delivery import ForgeNotifier
from preview.feedback import PreviewReport
from preview.forge import PREVIEW_CONTEXT, Forge, StatusState
from preview.forge_http import ForgeRejected, decode, integer, unless_gone

log = logging.getLogger("shipyard.gitlab")

DEFAULT_API_URL = "https://gitlab.com/api/v4"
# 20 pages of 100: a merge request with more notes than that is not worth reading all of.
MAX_NOTE_PAGES = 20

# GitLab's commit status states: pending means "queued", running is what a deploy in
# progress looks like in the MR widget.
_COMMIT_STATE = {"pending": "running", "success": "success", "failure": "failed"}


class _MergeRequestJSON(TypedDict):
    iid: int
    source_project_id: int | None
    target_project_id: int


class _NoteJSON(TypedDict):
    id: int
    body: str | None
    system: bool


def project_id(repository: str) -> str:
    """The URL-encoded project path GitLab takes in place of a numeric id."""
    return quote(repository, safe="")


class GitLabForge(Forge):
    """GitLab.com or a self-managed `/api/v4`."""

    provider = "gitlab"
    name = "GitLab"
    review = "merge request"
    default_api_url = DEFAULT_API_URL
    log = log

    @staticmethod
    def auth_headers(token: str) -> Mapping[str, str]:
        return {"PRIVATE-TOKEN": token}

    async def set_status(
        self,
        report: PreviewReport,
        state: StatusState,
        description: str,
        *,
        target_url: str | None,
        context: str = PREVIEW_CONTEXT,
    ) -> None:
        body: dict[str, Any] = {
            "state": _COMMIT_STATE[state],
            "ref": report.branch,
            "name": context,
            "description": description,
        }
        if target_url:
            body["target_url"] = target_url
        path = f"/projects/{project_id(report.repository)}/statuses/{report.sha}"
        try:
            await self.http.request("POST", path, json=body)
        except ForgeRejected as error:
            # GitLab refuses to "move" a status to the state it already has (say, the
            # same success reported again after a restart): nothing is lost.
            if error.status == 400 and "transition" in error.detail.lower():
                log.debug("%s of %s unchanged: %s", context, report.short_sha, error)
                return
            raise

    async def review_numbers(self, repository: str, branch: str, *, closed_too: bool) -> list[int]:
        state = "all" if closed_too else "opened"
        params = {"source_branch": branch, "state": state, "per_page": "100"}
        path = f"/projects/{project_id(repository)}/merge_requests"
        response = await self.http.request("GET", path, params=params)
        found = decode(response, lambda data: [cast(_MergeRequestJSON, mr) for mr in data])
        # A fork's MR from a branch of the same name is somebody else's (a deleted fork
        # leaves no source project).
        return sorted(
            integer(mr["iid"])
            for mr in found
            if mr["source_project_id"] is not None
            and mr["source_project_id"] == mr["target_project_id"]
        )

    async def find_comment(self, repository: str, number: int, marker: str) -> int | None:
        path = f"/projects/{project_id(repository)}/merge_requests/{number}/notes"
        page = "1"
        for _ in range(MAX_NOTE_PAGES):
            params = {"per_page": "100", "page": page, "sort": "asc", "order_by": "created_at"}
            response = await self.http.request("GET", path, params=params)
            for note, body in decode(response, lambda data: [_note(item) for item in data]):
                # At the start only: a reviewer quoting our note must not be mistaken for it.
                if body.startswith(marker):
                    return note
            page = response.headers.get("x-next-page", "").strip()
            if not page.isdigit():
                break
        return None

    async def update_comment(self, repository: str, number: int, comment: int, body: str) -> bool:
        path = f"/projects/{project_id(repository)}/merge_requests/{number}/notes/{comment}"
        return await unless_gone(self.http.request("PUT", path, json={"body": body}))

    async def create_comment(self, repository: str, number: int, body: str) -> int:
        path = f"/projects/{project_id(repository)}/merge_requests/{number}/notes"
        response = await self.http.request("POST", path, json={"body": body}, idempotent=False)
        return decode(response, lambda data: integer(data["id"]))


class GitLabNotifier(ForgeNotifier):
    """Merge request feedback on GitLab; see `preview.delivery.ForgeNotifier`."""

    kind = GitLabForge


def _note(data: object) -> tuple[int, str]:
    raw = cast(_NoteJSON, data)
    body = raw.get("body")
    note = integer(raw["id"])
    # System notes ("added 1 commit") are GitLab's, never ours.
    if raw.get("system") or not isinstance(body, str):
        return note, ""
    return note, body
