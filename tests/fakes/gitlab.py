"""A fake GitLab REST v4 server for MR feedback tests: real HTTP on a loopback port.

It serves exactly the endpoints Shipyard's GitLab notifier calls, under `/api/v4`, in
GitLab's documented shapes and status codes (201 on create, 200 on read and update,
`{"message": ...}` errors), records every call, and fails on request. What it must
reproduce, or the tests lie:

- `PRIVATE-TOKEN: <token>` checked on every call, `401 {"message": "401 Unauthorized"}`
  otherwise;
- projects addressed by numeric id or URL-encoded path (`group%2Fname`); an unencoded
  path does not match any route (404), as on GitLab;
- commit statuses: state in pending/running/success/failed/canceled (else 400), and a
  400 "Cannot transition status" when the status `name` already has that state;
- merge requests: `source_branch` and `state=opened|closed|merged|locked|all` filters;
  fork MRs carry a different `source_project_id`;
- notes: 404 for an unknown MR or note, `sort` (default desc) / `per_page` (max 100) /
  `page` with `X-Next-Page` and `X-Total` headers, 400 for an empty body;
- faults: `fail_next` (5xx, optionally after the request took effect), `rate_limit_next`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import unquote

from tests.fakes.forge import FakeForge, ForgeState, HTTPError, Json, public, running
from tests.fakes.json_http import Result

DEFAULT_TOKEN = "glpat-fake-token-for-tests-0123456789"
WEB = "https://gitlab.example.com"
PREFIX = "/api/v4"


_Result = tuple[int, Any, dict[str, str]]


@dataclass
class FakeGitLabState(ForgeState):
    """Everything the fake knows; every method is safe to call from the test thread."""

    invalid_json: ClassVar[Result] = (
        400,
        {"error": "The provided content-type is not supported."},
        {},
    )
    fault_body: ClassVar[Json] = {"message": "502 Bad Gateway"}

    token: str = DEFAULT_TOKEN
    projects: dict[int, Json] = field(default_factory=dict)
    merge_requests: dict[tuple[int, int], Json] = field(default_factory=dict)  # (project, iid)
    notes: dict[int, Json] = field(default_factory=dict)  # id → note (+ private keys)
    statuses: dict[tuple[int, str], list[Json]] = field(default_factory=dict)
    _next_id: int = 5000

    # -- set-up and fault injection --------------------------------------------------------

    def add_project(self, path: str) -> int:
        """The id of project `path` ("group/name"), created if new."""
        with self._lock:
            for project in self.projects.values():
                if project["path_with_namespace"] == path:
                    return int(project["id"])
            project_id = self._id()
            self.projects[project_id] = {
                "id": project_id,
                "path_with_namespace": path,
                "web_url": f"{WEB}/{path}",
            }
            return project_id

    def add_merge_request(
        self,
        project: str,
        iid: int,
        source_branch: str,
        *,
        source_project: str | None = None,
        labels: tuple[str, ...] = (),
        state: str = "opened",
    ) -> Json:
        """Open MR `iid` from `source_branch` (of `source_project`, a fork if given)."""
        with self._lock:
            target_id = self.add_project(project)
            source_id = self.add_project(source_project or project)
            merge_request: Json = {
                "id": self._id(),
                "iid": iid,
                "project_id": target_id,
                "title": f"Change {source_branch}",
                "state": state,
                "source_branch": source_branch,
                "target_branch": "main",
                "source_project_id": source_id,
                "target_project_id": target_id,
                "labels": list(labels),
                "author": {"id": 1, "username": "dev", "name": "Dev"},
                "sha": "0" * 40,
                "web_url": f"{WEB}/{project}/-/merge_requests/{iid}",
                "created_at": _now(),
                "updated_at": _now(),
            }
            self.merge_requests[(target_id, iid)] = merge_request
            return merge_request

    def add_note(
        self, project: str, iid: int, body: str, *, user: str = "reviewer", system: bool = False
    ) -> int:
        """A note somebody else (or GitLab itself, with `system`) wrote."""
        with self._lock:
            project_id = self.add_project(project)
            return int(self._create_note(project_id, iid, body, user, system)["id"])

    # -- inspection ------------------------------------------------------------------------

    def commit_statuses(self, project: str, sha: str) -> list[Json]:
        """Statuses of a commit, oldest first."""
        with self._lock:
            return [dict(s) for s in self.statuses.get((self.add_project(project), sha), [])]

    def mr_notes(self, project: str, iid: int) -> list[Json]:
        """Notes of a merge request, oldest first."""
        with self._lock:
            project_id = self.add_project(project)
            return [
                public(n)
                for n in self.notes.values()
                if n["_project"] == project_id and n["noteable_iid"] == iid
            ]

    # -- request handling (server threads) -------------------------------------------------

    def _authenticate(self, headers: dict[str, str]) -> None:
        if headers.get("private-token") != self.token:
            raise HTTPError(401, "401 Unauthorized")

    def _error_body(self, message: str) -> Json:
        return {"message": message}

    def _route(
        self, method: str, path: str, query: dict[str, str], body: Any, headers: dict[str, str]
    ) -> _Result:
        if not path.startswith(PREFIX + "/"):
            raise HTTPError(404, "404 Not Found")
        for pattern, handlers in _ROUTES:
            match = pattern.fullmatch(path[len(PREFIX) :])
            if match is None:
                continue
            handler = handlers.get(method)
            if handler is None:
                raise HTTPError(405, "405 Method Not Allowed")
            args = match.groupdict()
            project = self._project(args.pop("project"))
            return handler(self, project, args, query, body)
        raise HTTPError(404, "404 Not Found")

    def _project(self, raw: str) -> int:
        wanted = unquote(raw)
        for project in self.projects.values():
            if str(project["id"]) == wanted or project["path_with_namespace"] == wanted:
                return int(project["id"])
        raise HTTPError(404, "404 Project Not Found")

    # -- endpoints -------------------------------------------------------------------------

    def _post_status(
        self, project: int, args: dict[str, str], query: dict[str, str], body: Any
    ) -> _Result:
        body = _object(body)
        state = body.get("state")
        if state not in {"pending", "running", "success", "failed", "canceled"}:
            raise HTTPError(400, "state does not have a valid value")
        name = body.get("name") or body.get("context") or "default"
        sha = args["sha"]
        existing = [s for s in self.statuses.get((project, sha), []) if s["name"] == name]
        if existing and existing[-1]["status"] == state:
            verb = {"running": "run", "success": "succeed", "failed": "drop"}.get(state, state)
            raise HTTPError(400, f"Cannot transition status via :{verb} from :{state}")
        status_id = self._id()
        status = {
            "id": status_id,
            "sha": sha,
            "ref": body.get("ref"),
            "status": state,
            "name": name,
            "target_url": body.get("target_url"),
            "description": body.get("description"),
            "created_at": _now(),
            "started_at": _now() if state == "running" else None,
            "finished_at": _now() if state in {"success", "failed", "canceled"} else None,
            "allow_failure": False,
            "coverage": None,
            "pipeline_id": 1,
            "author": {"id": 2, "username": "shipyard-bot", "name": "Shipyard"},
        }
        self.statuses.setdefault((project, sha), []).append(status)
        return 201, status, {}

    def _list_merge_requests(
        self, project: int, args: dict[str, str], query: dict[str, str], body: Any
    ) -> _Result:
        state = query.get("state", "all")
        branch = query.get("source_branch")
        found = [
            mr
            for (pid, _), mr in sorted(self.merge_requests.items(), key=lambda item: -item[0][1])
            if pid == project
            and (state == "all" or mr["state"] == state)
            and (branch is None or mr["source_branch"] == branch)
        ]
        return 200, found[: _per_page(query)], {}

    def _list_notes(
        self, project: int, args: dict[str, str], query: dict[str, str], body: Any
    ) -> _Result:
        iid = self._merge_request(project, args)
        notes = [
            public(n)
            for n in self.notes.values()
            if n["_project"] == project and n["noteable_iid"] == iid
        ]
        if query.get("sort", "desc") == "desc":
            notes.reverse()
        per_page = _per_page(query)
        page = max(1, int(query.get("page", "1")))
        pages = max(1, -(-len(notes) // per_page))
        headers = {
            "X-Page": str(page),
            "X-Per-Page": str(per_page),
            "X-Total": str(len(notes)),
            "X-Total-Pages": str(pages),
            "X-Next-Page": str(page + 1) if page < pages else "",
        }
        return 200, notes[(page - 1) * per_page : page * per_page], headers

    def _post_note(
        self, project: int, args: dict[str, str], query: dict[str, str], body: Any
    ) -> _Result:
        iid = self._merge_request(project, args)
        text = _note_body(body)
        return 201, public(self._create_note(project, iid, text, "shipyard-bot", False)), {}

    def _put_note(
        self, project: int, args: dict[str, str], query: dict[str, str], body: Any
    ) -> _Result:
        iid = self._merge_request(project, args)
        note = self.notes.get(int(args["note"]))
        if note is None or note["_project"] != project or note["noteable_iid"] != iid:
            raise HTTPError(404, "404 Not found")
        note["body"] = _note_body(body)
        note["updated_at"] = _now()
        return 200, public(note), {}

    # -- helpers ---------------------------------------------------------------------------

    def _merge_request(self, project: int, args: dict[str, str]) -> int:
        iid = int(args["iid"])
        if (project, iid) not in self.merge_requests:
            raise HTTPError(404, "404 Not found")
        return iid

    def _create_note(self, project: int, iid: int, body: str, user: str, system: bool) -> Json:
        note_id = self._id()
        merge_request = self.merge_requests.get((project, iid), {})
        note = {
            "id": note_id,
            "type": None,
            "body": body,
            "attachment": None,
            "author": {"id": 3, "username": user, "name": user},
            "created_at": _now(),
            "updated_at": _now(),
            "system": system,
            "noteable_id": merge_request.get("id"),
            "noteable_type": "MergeRequest",
            "noteable_iid": iid,
            "resolvable": False,
            "confidential": False,
            "internal": False,
            "_project": project,
        }
        self.notes[note_id] = note
        return note


_Endpoint = Callable[[FakeGitLabState, int, dict[str, str], dict[str, str], Any], _Result]
_PROJECT = r"/projects/(?P<project>[^/]+)"
_ROUTES: list[tuple[re.Pattern[str], dict[str, _Endpoint]]] = [
    (
        re.compile(_PROJECT + r"/statuses/(?P<sha>[0-9a-fA-F]+)"),
        {"POST": FakeGitLabState._post_status},
    ),
    (
        re.compile(_PROJECT + r"/merge_requests"),
        {"GET": FakeGitLabState._list_merge_requests},
    ),
    (
        re.compile(_PROJECT + r"/merge_requests/(?P<iid>\d+)/notes"),
        {"GET": FakeGitLabState._list_notes, "POST": FakeGitLabState._post_note},
    ),
    (
        re.compile(_PROJECT + r"/merge_requests/(?P<iid>\d+)/notes/(?P<note>\d+)"),
        {"PUT": FakeGitLabState._put_note},
    ),
]


def _object(body: Any) -> Json:
    if not isinstance(body, dict):
        raise HTTPError(400, "400 Bad request")
    return body


def _note_body(body: Any) -> str:
    text = _object(body).get("body")
    if not isinstance(text, str) or not text.strip():
        raise HTTPError(400, "400 Bad request - body is missing")
    if len(text) > 1_000_000:
        raise HTTPError(400, "Note is too long (maximum is 1000000 characters)")
    return text


def _per_page(query: dict[str, str]) -> int:
    return min(100, max(1, int(query.get("per_page", "20"))))


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


class FakeGitLab(FakeForge[FakeGitLabState]):
    """The server: `url` is the API base URL (ending in `/api/v4`), `state` what it holds."""

    def __init__(self, token: str = DEFAULT_TOKEN) -> None:
        super().__init__(FakeGitLabState(token=token), "fake-gitlab", prefix=PREFIX)


def fake_gitlab(token: str = DEFAULT_TOKEN) -> AbstractContextManager[FakeGitLab]:
    """Run a fake GitLab on a free loopback port for the duration of the block."""
    return running(FakeGitLab(token))
