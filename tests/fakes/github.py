"""A fake GitHub REST v3 server for PR feedback tests: real HTTP on a loopback port.

It serves exactly the endpoints Shipyard's notifier calls, answers in GitHub's documented
shapes and status codes (201 on create, 200 on read and update, 401 / 404 / 409 / 422 in
GitHub's `{"message": ...}` form), records every call, and fails on request. What it
must reproduce, or the tests lie (grow this list with each bug found):

- `Authorization: Bearer <token>` (or `token <token>`) checked on every call, 401 otherwise;
- commit statuses: state in error/failure/pending/success, description at most 140
  characters, else 422;
- deployments: without `required_contexts` GitHub refuses (409) unless every status
  context of the commit is success; listing filters by sha, ref, task and environment,
  newest first;
- deployment statuses: the documented states; `auto_inactive` (default true) marks prior
  *non-transient, non-production* successful deployments of the environment inactive;
- pulls: `head=owner:branch` and `state=open|closed|all` filters;
- issue comments: 404 for an unknown issue, `per_page` (max 100) and `page` with a
  `Link` header carrying `rel="next"` / `rel="last"`, a 422 for an empty or oversized body;
- faults: `fail_next` (5xx, optionally after the request took effect, which is how a
  lost response looks to a client), `rate_limit_next` (429 with Retry-After).
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

DEFAULT_TOKEN = "ghs_fake-token-for-tests-0123456789"
WEB = "https://github.com"
DOCS = "https://docs.github.com/rest"
MAX_COMMENT = 65_536


@dataclass
class FakeGitHubState(ForgeState):
    """Everything the fake knows; every method is safe to call from the test thread."""

    invalid_json: ClassVar[Result] = (400, {"message": "Problems parsing JSON"}, {})
    fault_body: ClassVar[Json] = {"message": "Server Error"}

    token: str = DEFAULT_TOKEN
    pulls: dict[tuple[str, int], Json] = field(default_factory=dict)
    comments: dict[int, Json] = field(default_factory=dict)  # id → comment (+ private keys)
    statuses: dict[tuple[str, str], list[Json]] = field(default_factory=dict)
    deployments: dict[int, Json] = field(default_factory=dict)
    deployment_statuses: dict[int, list[Json]] = field(default_factory=dict)
    _next_id: int = 1000

    # -- set-up and fault injection --------------------------------------------------------

    def add_pull(
        self,
        repository: str,
        number: int,
        branch: str,
        *,
        head_repository: str | None = None,
        labels: tuple[str, ...] = (),
        state: str = "open",
    ) -> Json:
        """Open pull request `number` from `branch` (of `head_repository`, a fork if given)."""
        head_repository = head_repository or repository
        owner = head_repository.split("/")[0]
        pull: Json = {
            "id": self._id(),
            "number": number,
            "state": state,
            "title": f"Change {branch}",
            "html_url": f"{WEB}/{repository}/pull/{number}",
            "user": {"login": owner, "id": 1, "type": "User"},
            "labels": [{"id": self._id(), "name": name} for name in labels],
            "head": {
                "label": f"{owner}:{branch}",
                "ref": branch,
                "sha": "0" * 40,
                "repo": {"full_name": head_repository, "fork": head_repository != repository},
            },
            "base": {
                "label": f"{repository.split('/', maxsplit=1)[0]}:main",
                "ref": "main",
                "repo": {"full_name": repository, "fork": False},
            },
        }
        with self._lock:
            self.pulls[(repository, number)] = pull
        return pull

    def add_comment(
        self, repository: str, number: int, body: str, *, user: str = "reviewer"
    ) -> int:
        """A comment somebody else wrote."""
        with self._lock:
            return self._create_comment(repository, number, body, user)["id"]  # type: ignore[no-any-return]

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

    def deployments_of(self, repository: str, environment: str) -> list[Json]:
        """Deployments of an environment, oldest first."""
        with self._lock:
            return [
                public(d)
                for d in self.deployments.values()
                if d["_repository"] == repository and d["environment"] == environment
            ]

    def states_of(self, deployment: int) -> list[str]:
        with self._lock:
            return [s["state"] for s in self.deployment_statuses.get(deployment, [])]

    # -- request handling (server threads) -------------------------------------------------

    def _authenticate(self, headers: dict[str, str]) -> None:
        scheme, _, credential = headers.get("authorization", "").partition(" ")
        if scheme.lower() not in {"bearer", "token"} or credential != self.token:
            raise HTTPError(401, "Bad credentials")

    def _error_body(self, message: str) -> Json:
        return {"message": message, "documentation_url": DOCS, "status": "error"}

    def _route(
        self, method: str, path: str, query: dict[str, str], body: Any, headers: dict[str, str]
    ) -> tuple[int, Any, dict[str, str]]:
        for pattern, handlers in _ROUTES:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            handler: _Endpoint | None = handlers.get(method)
            if handler is None:
                raise HTTPError(404, "Not Found")
            repository = f"{match['owner']}/{match['repo']}"
            # Endpoints that build absolute links need the address the client used.
            args = {**match.groupdict(), "_host": headers.get("host", "127.0.0.1")}
            return handler(self, repository, args, query, body)
        raise HTTPError(404, "Not Found")

    # -- endpoints -------------------------------------------------------------------------

    def _post_status(
        self, repository: str, args: dict[str, str], query: dict[str, str], body: Any
    ) -> tuple[int, Any, dict[str, str]]:
        body = _object(body)
        state = body.get("state")
        if state not in {"error", "failure", "pending", "success"}:
            raise HTTPError(422, f"Validation Failed: state {state!r} is not included in the list")
        description = body.get("description")
        if description is not None and len(description) > 140:
            raise HTTPError(422, "Validation Failed: description is too long (maximum is 140)")
        sha = args["sha"]
        status_id = self._id()
        status = {
            "url": f"/repos/{repository}/statuses/{sha}",
            "id": status_id,
            "node_id": f"SC_{status_id}",
            "state": state,
            "description": description,
            "target_url": body.get("target_url"),
            "context": body.get("context", "default"),
            "created_at": _now(),
            "updated_at": _now(),
            "creator": {"login": "shipyard[bot]", "id": 2, "type": "Bot"},
        }
        self.statuses.setdefault((repository, sha), []).append(status)
        return 201, status, {}

    def _list_deployments(
        self, repository: str, args: dict[str, str], query: dict[str, str], body: Any
    ) -> tuple[int, Any, dict[str, str]]:
        found = [
            public(d)
            for d in reversed(self.deployments.values())
            if d["_repository"] == repository
            and all(query[k] == d[k] for k in ("sha", "ref", "task", "environment") if k in query)
        ]
        return 200, found[: _per_page(query)], {}

    def _create_deployment(
        self, repository: str, args: dict[str, str], query: dict[str, str], body: Any
    ) -> tuple[int, Any, dict[str, str]]:
        body = _object(body)
        ref = body.get("ref")
        if not isinstance(ref, str) or not ref:
            raise HTTPError(422, "Invalid request: ref is required")
        if "required_contexts" not in body:
            latest: dict[str, str] = {}
            for status in self.statuses.get((repository, ref), []):
                latest[status["context"]] = status["state"]
            if any(state != "success" for state in latest.values()):
                raise HTTPError(409, f"Conflict: Commit status checks failed for {ref}.")
        environment = body.get("environment", "production")
        deployment_id = self._id()
        deployment = {
            "url": f"/repos/{repository}/deployments/{deployment_id}",
            "id": deployment_id,
            "node_id": f"DE_{deployment_id}",
            "sha": ref,
            "ref": ref,
            "task": body.get("task", "deploy"),
            "payload": body.get("payload", {}),
            "original_environment": environment,
            "environment": environment,
            "description": body.get("description"),
            "creator": {"login": "shipyard[bot]", "id": 2, "type": "Bot"},
            "created_at": _now(),
            "updated_at": _now(),
            "transient_environment": bool(body.get("transient_environment", False)),
            "production_environment": bool(
                body.get("production_environment", environment == "production")
            ),
            "_repository": repository,
            "_request": body,
        }
        deployment["statuses_url"] = f"{deployment['url']}/statuses"
        self.deployments[deployment["id"]] = deployment
        return 201, public(deployment), {}

    def _create_deployment_status(
        self, repository: str, args: dict[str, str], query: dict[str, str], body: Any
    ) -> tuple[int, Any, dict[str, str]]:
        body = _object(body)
        deployment = self.deployments.get(int(args["id"]))
        if deployment is None or deployment["_repository"] != repository:
            raise HTTPError(404, "Not Found")
        state = body.get("state")
        allowed = {"error", "failure", "inactive", "in_progress", "queued", "pending", "success"}
        if state not in allowed:
            raise HTTPError(422, f"Validation Failed: state {state!r} is not included in the list")
        description = body.get("description")
        if description is not None and len(description) > 140:
            raise HTTPError(422, "Validation Failed: description is too long (maximum is 140)")
        status = self._deployment_status(deployment, body)
        if state == "success" and body.get("auto_inactive", True):
            for other in self.deployments.values():
                if (
                    other is not deployment
                    and other["_repository"] == repository
                    and other["environment"] == deployment["environment"]
                    and not other["transient_environment"]
                    and not other["production_environment"]
                    and self.states_of(other["id"])[-1:] == ["success"]
                ):
                    self._deployment_status(other, {"state": "inactive"})
        return 201, status, {}

    def _deployment_status(self, deployment: Json, body: Json) -> Json:
        status_id = self._id()
        status = {
            "url": f"{deployment['url']}/statuses/{status_id}",
            "id": status_id,
            "node_id": f"DES_{status_id}",
            "state": body["state"],
            "description": body.get("description", ""),
            "environment": deployment["environment"],
            "environment_url": body.get("environment_url", ""),
            "log_url": body.get("log_url", ""),
            "target_url": body.get("log_url", ""),
            "deployment_url": deployment["url"],
            "created_at": _now(),
            "updated_at": _now(),
            "creator": {"login": "shipyard[bot]", "id": 2, "type": "Bot"},
        }
        self.deployment_statuses.setdefault(deployment["id"], []).append(status)
        return status

    def _list_pulls(
        self, repository: str, args: dict[str, str], query: dict[str, str], body: Any
    ) -> tuple[int, Any, dict[str, str]]:
        state = query.get("state", "open")
        head = query.get("head")
        found = [
            pull
            for (repo, _), pull in sorted(self.pulls.items(), key=lambda item: -item[0][1])
            if repo == repository
            and (state == "all" or pull["state"] == state)
            and (head is None or pull["head"]["label"] == head)
        ]
        return 200, found[: _per_page(query)], {}

    def _list_comments(
        self, repository: str, args: dict[str, str], query: dict[str, str], body: Any
    ) -> tuple[int, Any, dict[str, str]]:
        number = self._issue(repository, args)
        comments = [
            public(c)
            for c in self.comments.values()
            if c["_repository"] == repository and c["_issue"] == number
        ]
        per_page = _per_page(query)
        page = max(1, int(query.get("page", "1")))
        last = max(1, -(-len(comments) // per_page))
        headers: dict[str, str] = {}
        if page < last:
            base = f"http://{args['_host']}/repos/{repository}/issues/{number}/comments"
            links = [
                f'<{base}?{urlencode({"per_page": per_page, "page": page + 1})}>; rel="next"',
                f'<{base}?{urlencode({"per_page": per_page, "page": last})}>; rel="last"',
            ]
            headers["Link"] = ", ".join(links)
        return 200, comments[(page - 1) * per_page : page * per_page], headers

    def _post_comment(
        self, repository: str, args: dict[str, str], query: dict[str, str], body: Any
    ) -> tuple[int, Any, dict[str, str]]:
        number = self._issue(repository, args)
        text = _comment_body(body)
        return 201, public(self._create_comment(repository, number, text, "shipyard[bot]")), {}

    def _patch_comment(
        self, repository: str, args: dict[str, str], query: dict[str, str], body: Any
    ) -> tuple[int, Any, dict[str, str]]:
        comment = self.comments.get(int(args["id"]))
        if comment is None or comment["_repository"] != repository:
            raise HTTPError(404, "Not Found")
        comment["body"] = _comment_body(body)
        comment["updated_at"] = _now()
        return 200, public(comment), {}

    # -- helpers ---------------------------------------------------------------------------

    def _issue(self, repository: str, args: dict[str, str]) -> int:
        number = int(args["number"])
        if (repository, number) not in self.pulls:
            raise HTTPError(404, "Not Found")
        return number

    def _create_comment(self, repository: str, number: int, body: str, user: str) -> Json:
        comment_id = self._id()
        comment = {
            "id": comment_id,
            "node_id": f"IC_{comment_id}",
            "url": f"/repos/{repository}/issues/comments/{comment_id}",
            "html_url": f"{WEB}/{repository}/pull/{number}#issuecomment-{comment_id}",
            "issue_url": f"/repos/{repository}/issues/{number}",
            "body": body,
            "user": {"login": user, "id": 3, "type": "Bot" if user.endswith("[bot]") else "User"},
            "author_association": "NONE",
            "created_at": _now(),
            "updated_at": _now(),
            "_repository": repository,
            "_issue": number,
        }
        self.comments[comment_id] = comment
        return comment


_Endpoint = Callable[
    [FakeGitHubState, str, dict[str, str], dict[str, str], Any], tuple[int, Any, dict[str, str]]
]
_ROUTES: list[tuple[re.Pattern[str], dict[str, _Endpoint]]] = [
    (
        re.compile(r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)/statuses/(?P<sha>[0-9a-fA-F]+)"),
        {"POST": FakeGitHubState._post_status},
    ),
    (
        re.compile(r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)/deployments"),
        {"GET": FakeGitHubState._list_deployments, "POST": FakeGitHubState._create_deployment},
    ),
    (
        re.compile(r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)/deployments/(?P<id>\d+)/statuses"),
        {"POST": FakeGitHubState._create_deployment_status},
    ),
    (
        re.compile(r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)/pulls"),
        {"GET": FakeGitHubState._list_pulls},
    ),
    (
        re.compile(r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)/issues/(?P<number>\d+)/comments"),
        {"GET": FakeGitHubState._list_comments, "POST": FakeGitHubState._post_comment},
    ),
    (
        re.compile(r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)/issues/comments/(?P<id>\d+)"),
        {"PATCH": FakeGitHubState._patch_comment},
    ),
]


def _object(body: Any) -> Json:
    if not isinstance(body, dict):
        raise HTTPError(400, "Problems parsing JSON")
    return body


def _comment_body(body: Any) -> str:
    text = _object(body).get("body")
    if not isinstance(text, str) or not text:
        raise HTTPError(422, "Validation Failed: body cannot be blank")
    if len(text) > MAX_COMMENT:
        raise HTTPError(422, "Validation Failed: body is too long (maximum is 65536 characters)")
    return text


def _per_page(query: dict[str, str]) -> int:
    return min(100, max(1, int(query.get("per_page", "30"))))


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeGitHub(FakeForge[FakeGitHubState]):
    """The server: `url` is the API base URL, `state` what it recorded and holds."""

    def __init__(self, token: str = DEFAULT_TOKEN) -> None:
        super().__init__(
            FakeGitHubState(token=token),
            "fake-github",
            headers={"X-GitHub-Media-Type": "github.v3; format=json"},
        )


def fake_github(token: str = DEFAULT_TOKEN) -> AbstractContextManager[FakeGitHub]:
    """Run a fake GitHub on a free loopback port for the duration of the block."""
    return running(FakeGitHub(token))
