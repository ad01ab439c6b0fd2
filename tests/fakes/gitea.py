"""A fake Gitea (and Forgejo) API v1 server for pull request feedback tests: real HTTP on loopback.

It serves exactly the endpoints Shipyard's Gitea adapter calls, under `/api/v1`, in
Gitea's documented shapes and status codes, records every call, and fails on request
(`faults`: 5xx, 429, no answer). What it must reproduce, or the tests lie:

- `Authorization: token <token>` (or `Bearer`) checked on every call;
  `401 {"message": "token is required"}` otherwise;
- commit statuses: `state` in pending/success/error/failure/warning, else 422; the
  response names the state `status`; a context may be set to any state any number of
  times (no "cannot transition" as on GitLab);
- pulls: `state=open|closed|all` (default open), `page` / `limit` (max 50), newest
  first, `X-Total-Count` and a `Link` header; no filter by head branch (Gitea has none);
  a fork's pull request carries the fork in `head.repo`;
- issue comments: listed all at once, oldest first (Gitea does not page this list);
  404 for an unknown issue or comment, 422 for an empty body; PATCH answers 200.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import urlencode

from tests.fakes.forge import FakeForge, ForgeState, HTTPError, Json, public, running
from tests.fakes.json_http import Result

DEFAULT_TOKEN = "gitea-fake-token-for-tests-0123456789abcdef"
WEB = "https://gitea.example.com"
PREFIX = "/api/v1"
MAX_LIMIT = 50


@dataclass
class FakeGiteaState(ForgeState):
    """Everything the fake knows; every method is safe to call from the test thread."""

    invalid_json: ClassVar[Result] = (422, {"message": "invalid JSON"}, {})
    fault_body: ClassVar[Json] = {"message": "Bad Gateway"}

    token: str = DEFAULT_TOKEN
    pulls: dict[tuple[str, int], Json] = field(default_factory=dict)  # (repository, number)
    comments: dict[int, Json] = field(default_factory=dict)  # id → comment (+ private keys)
    statuses: dict[tuple[str, str], list[Json]] = field(default_factory=dict)
    _next_id: int = 700

    # -- set-up ----------------------------------------------------------------------------

    def add_pull(
        self,
        repository: str,
        number: int,
        branch: str,
        *,
        head_repository: str | None = None,
        state: str = "open",
    ) -> Json:
        """Pull request `number` from `branch` (of `head_repository`, a fork if given)."""
        head_repository = head_repository or repository
        pull: Json = {
            "id": self._id(),
            "number": number,
            "state": state,
            "title": f"Change {branch}",
            "html_url": f"{WEB}/{repository}/pulls/{number}",
            "user": {"login": head_repository.split("/")[0], "id": 1},
            "labels": [],
            "merged": False,
            "head": {
                "label": branch,
                "ref": branch,
                "sha": "0" * 40,
                "repo_id": 2 if head_repository != repository else 1,
                "repo": {"full_name": head_repository, "fork": head_repository != repository},
            },
            "base": {
                "label": "main",
                "ref": "main",
                "sha": "0" * 40,
                "repo_id": 1,
                "repo": {"full_name": repository, "fork": False},
            },
            "created_at": _now(),
        }
        with self._lock:
            self.pulls[(repository, number)] = pull
        return pull

    def add_comment(
        self, repository: str, number: int, body: str, *, user: str = "reviewer"
    ) -> int:
        """A comment somebody else wrote."""
        with self._lock:
            return int(self._create_comment(repository, number, body, user)["id"])

    # -- inspection ------------------------------------------------------------------------

    def commit_statuses(self, repository: str, sha: str) -> list[Json]:
        """Statuses of a commit, oldest first."""
        with self._lock:
            return [dict(s) for s in self.statuses.get((repository, sha), [])]

    def pull_comments(self, repository: str, number: int) -> list[Json]:
        with self._lock:
            return [
                public(c)
                for c in self.comments.values()
                if c["_repository"] == repository and c["_issue"] == number
            ]

    # -- request handling (server threads) -------------------------------------------------

    def _authenticate(self, headers: dict[str, str]) -> None:
        scheme, _, credential = headers.get("authorization", "").partition(" ")
        if scheme.lower() not in {"token", "bearer"} or credential != self.token:
            raise HTTPError(401, "token is required")

    def _error_body(self, message: str) -> Json:
        return {"message": message, "url": f"{WEB}/api/swagger"}

    def _route(
        self, method: str, path: str, query: dict[str, str], body: Any, headers: dict[str, str]
    ) -> Result:
        if not path.startswith(PREFIX + "/"):
            raise HTTPError(404, "not found")
        for pattern, handlers in _ROUTES:
            match = pattern.fullmatch(path[len(PREFIX) :])
            if match is None:
                continue
            handler = handlers.get(method)
            if handler is None:
                raise HTTPError(405, "method not allowed")
            args = match.groupdict()
            repository = f"{args.pop('owner')}/{args.pop('repo')}"
            return handler(self, repository, args, query, body)
        raise HTTPError(404, "not found")

    # -- endpoints -------------------------------------------------------------------------

    def _post_status(
        self, repository: str, args: dict[str, str], query: dict[str, str], body: Any
    ) -> Result:
        body = _object(body)
        state = body.get("state")
        if state not in {"pending", "success", "error", "failure", "warning"}:
            raise HTTPError(422, f"[State]: invalid commit status state {state!r}")
        status = {
            "id": self._id(),
            "status": state,
            "target_url": body.get("target_url") or "",
            "description": body.get("description") or "",
            "context": body.get("context") or "default",
            "creator": {"login": "shipyard-bot", "id": 3},
            "created_at": _now(),
            "updated_at": _now(),
        }
        self.statuses.setdefault((repository, args["sha"]), []).append(status)
        return 201, status, {}

    def _list_pulls(
        self, repository: str, args: dict[str, str], query: dict[str, str], body: Any
    ) -> Result:
        state = query.get("state", "open")
        found = [
            pull
            for (repo, _), pull in sorted(self.pulls.items(), key=lambda item: -item[0][1])
            if repo == repository and (state == "all" or pull["state"] == state)
        ]
        limit = min(MAX_LIMIT, max(1, int(query.get("limit", str(MAX_LIMIT)))))
        page = max(1, int(query.get("page", "1")))
        pages = max(1, -(-len(found) // limit))
        headers = {"X-Total-Count": str(len(found))}
        if page < pages:
            after = urlencode({**query, "page": str(page + 1)})
            headers["Link"] = f'<{WEB}{PREFIX}/repos/{repository}/pulls?{after}>; rel="next"'
        return 200, found[(page - 1) * limit : page * limit], headers

    def _list_comments(
        self, repository: str, args: dict[str, str], query: dict[str, str], body: Any
    ) -> Result:
        number = self._issue(repository, args)
        return 200, self.pull_comments(repository, number), {}

    def _post_comment(
        self, repository: str, args: dict[str, str], query: dict[str, str], body: Any
    ) -> Result:
        number = self._issue(repository, args)
        text = _comment_body(body)
        return 201, public(self._create_comment(repository, number, text, "shipyard-bot")), {}

    def _patch_comment(
        self, repository: str, args: dict[str, str], query: dict[str, str], body: Any
    ) -> Result:
        comment = self.comments.get(int(args["comment"]))
        if comment is None or comment["_repository"] != repository:
            raise HTTPError(404, "comment does not exist")
        comment["body"] = _comment_body(body)
        comment["updated_at"] = _now()
        return 200, public(comment), {}

    # -- helpers ---------------------------------------------------------------------------

    def _issue(self, repository: str, args: dict[str, str]) -> int:
        number = int(args["number"])
        if (repository, number) not in self.pulls:
            raise HTTPError(404, "issue does not exist")
        return number

    def _create_comment(self, repository: str, number: int, body: str, user: str) -> Json:
        comment_id = self._id()
        comment: Json = {
            "id": comment_id,
            "body": body,
            "user": {"login": user, "id": 4},
            "html_url": f"{WEB}/{repository}/pulls/{number}",
            "issue_url": f"{WEB}/{repository}/issues/{number}",
            "created_at": _now(),
            "updated_at": _now(),
            "_repository": repository,
            "_issue": number,
        }
        self.comments[comment_id] = comment
        return comment


_Endpoint = Callable[[FakeGiteaState, str, dict[str, str], dict[str, str], Any], Result]
_REPO = r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)"
_ROUTES: list[tuple[re.Pattern[str], dict[str, _Endpoint]]] = [
    (re.compile(_REPO + r"/statuses/(?P<sha>[0-9a-f]+)"), {"POST": FakeGiteaState._post_status}),
    (re.compile(_REPO + r"/pulls"), {"GET": FakeGiteaState._list_pulls}),
    (
        re.compile(_REPO + r"/issues/(?P<number>\d+)/comments"),
        {"GET": FakeGiteaState._list_comments, "POST": FakeGiteaState._post_comment},
    ),
    (
        re.compile(_REPO + r"/issues/comments/(?P<comment>\d+)"),
        {"PATCH": FakeGiteaState._patch_comment},
    ),
]


def _object(body: Any) -> Json:
    if not isinstance(body, dict):
        raise HTTPError(422, "a JSON object is required")
    return body


def _comment_body(body: Any) -> str:
    text = _object(body).get("body")
    if not isinstance(text, str) or not text.strip():
        raise HTTPError(422, "[Body]: Required")
    return text


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeGitea(FakeForge[FakeGiteaState]):
    """The server: `url` is the API base URL (ending in `/api/v1`), `state` what it holds."""

    def __init__(self, token: str = DEFAULT_TOKEN) -> None:
        super().__init__(FakeGiteaState(token=token), "fake-gitea", prefix=PREFIX)


def fake_gitea(token: str = DEFAULT_TOKEN) -> AbstractContextManager[FakeGitea]:
    """Run a fake Gitea on a free loopback port for the duration of the block."""
    return running(FakeGitea(token))
