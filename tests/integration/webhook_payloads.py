"""Webhook deliveries in the shapes GitHub, GitLab and Gitea document, signed like theirs.

Each payload keeps the fields of the forge's published example that Shipyard reads (and
a few it does not, so that extra fields are seen too), with the example's nesting:
GitHub's from the octokit/webhooks payload examples (push, pull_request, delete),
GitLab's from its webhook events documentation (Push Hook, Merge Request Hook), Gitea's
from its webhook documentation (push, pull_request).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from typing import Any

SERVED = "acme/agents"


def _github_repository(full_name: str) -> dict[str, Any]:
    owner, name = full_name.split("/", 1)
    return {
        "id": 186853002,
        "name": name,
        "full_name": full_name,
        "private": False,
        "owner": {"login": owner, "type": "User"},
        "html_url": f"https://github.com/{full_name}",
        "clone_url": f"https://github.com/{full_name}.git",
        "default_branch": "main",
    }


def github_push(
    branch: str, after: str, *, deleted: bool = False, repository: str = SERVED
) -> dict[str, Any]:
    return {
        "ref": f"refs/heads/{branch}",
        "before": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
        "after": "0" * 40 if deleted else after,
        "created": False,
        "deleted": deleted,
        "forced": False,
        "base_ref": None,
        "compare": f"https://github.com/{repository}/compare/6113728f27ae...{after[:12]}",
        "commits": [] if deleted else [{"id": after, "message": "change", "distinct": True}],
        "head_commit": None if deleted else {"id": after, "message": "change"},
        "repository": _github_repository(repository),
        "pusher": {"name": "Codertocat", "email": "codertocat@example.com"},
        "sender": {"login": "Codertocat", "type": "User"},
    }


def github_delete(branch: str, *, repository: str = SERVED) -> dict[str, Any]:
    return {
        "ref": branch,
        "ref_type": "branch",
        "pusher_type": "user",
        "repository": _github_repository(repository),
        "sender": {"login": "Codertocat", "type": "User"},
    }


def github_pull_request(
    branch: str,
    number: int,
    sha: str,
    *,
    fork: bool = False,
    labels: tuple[str, ...] = (),
    repository: str = SERVED,
) -> dict[str, Any]:
    head_repo = "someone/agents" if fork else repository
    return {
        "action": "labeled" if labels else "opened",
        "number": number,
        "pull_request": {
            "url": f"https://api.github.com/repos/{repository}/pulls/{number}",
            "number": number,
            "state": "open",
            "locked": False,
            "title": "Update the README with new information.",
            "user": {"login": "Codertocat", "type": "User"},
            "labels": [
                {"id": 1362934389 + index, "name": name, "color": "d73a4a", "default": False}
                for index, name in enumerate(labels)
            ],
            "head": {
                "label": f"{head_repo.split('/')[0]}:{branch}",
                "ref": branch,
                "sha": sha,
                "user": {"login": head_repo.split("/")[0], "type": "User"},
                "repo": _github_repository(head_repo),
            },
            "base": {
                "label": f"{repository.split('/', maxsplit=1)[0]}:main",
                "ref": "main",
                "sha": "f95f852bd8fca8fcc58a9a2d6c842781e32a215e",
                "repo": _github_repository(repository),
            },
        },
        "repository": _github_repository(repository),
        "sender": {"login": "Codertocat", "type": "User"},
    }


def signed_github(
    secret: str, event: str, payload: dict[str, Any] | bytes, delivery: str | None = None
) -> tuple[bytes, dict[str, str]]:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    headers = {
        "content-type": "application/json",
        "x-github-event": event,
        "x-github-delivery": delivery or str(uuid.uuid4()),
        "x-hub-signature-256": f"sha256={signature}",
        "user-agent": "GitHub-Hookshot/test",
    }
    return body, headers


def _gitlab_project(path: str) -> dict[str, Any]:
    return {
        "id": 15,
        "name": path.rsplit("/", 1)[-1],
        "web_url": f"http://example.com/{path}",
        "git_ssh_url": f"git@example.com:{path}.git",
        "git_http_url": f"http://example.com/{path}.git",
        "namespace": path.rsplit("/", 1)[0],
        "path_with_namespace": path,
        "default_branch": "main",
    }


def gitlab_push_payload(branch: str, after: str, *, project: str = SERVED) -> dict[str, Any]:
    return {
        "object_kind": "push",
        "event_name": "push",
        "before": "95790bf891e76fee5e1747ab589903a6a1f80f22",
        "after": after,
        "ref": f"refs/heads/{branch}",
        "checkout_sha": after,
        "user_id": 4,
        "user_name": "John Smith",
        "project_id": 15,
        "project": _gitlab_project(project),
        "commits": [{"id": after, "message": "change"}],
        "total_commits_count": 1,
        "repository": {"name": project.rsplit("/", 1)[-1], "url": f"git@example.com:{project}.git"},
    }


def gitlab_merge_request_payload(
    branch: str,
    iid: int,
    sha: str,
    *,
    project: str = SERVED,
    source_project_id: int = 15,
    labels: tuple[str, ...] = (),
) -> dict[str, Any]:
    return {
        "object_kind": "merge_request",
        "event_type": "merge_request",
        "user": {"id": 1, "name": "Administrator", "username": "root"},
        "project": _gitlab_project(project),
        "object_attributes": {
            "id": 99,
            "iid": iid,
            "target_branch": "main",
            "source_branch": branch,
            "source_project_id": source_project_id,
            "target_project_id": 15,
            "state": "opened",
            "action": "open",
            "title": "MS-Viewport",
            "last_commit": {"id": sha, "message": "change", "url": "http://example.com"},
            "source": _gitlab_project(project),
            "target": _gitlab_project(project),
        },
        "labels": [{"id": 206 + index, "title": title} for index, title in enumerate(labels)],
        "repository": {"name": project.rsplit("/", 1)[-1], "url": f"git@example.com:{project}.git"},
    }


def gitlab_headers(secret: str, event: str) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "x-gitlab-event": event,
        "x-gitlab-token": secret,
        "x-gitlab-event-uuid": str(uuid.uuid4()),
    }


def gitlab_push(
    secret: str, branch: str, after: str, *, project: str = SERVED
) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(gitlab_push_payload(branch, after, project=project)).encode()
    return body, gitlab_headers(secret, "Push Hook")


def _gitea_repository(full_name: str) -> dict[str, Any]:
    owner, name = full_name.split("/", 1)
    return {
        "id": 1,
        "owner": {"id": 1, "login": owner, "username": owner},
        "name": name,
        "full_name": full_name,
        "private": False,
        "html_url": f"http://localhost:3000/{full_name}",
        "clone_url": f"http://localhost:3000/{full_name}.git",
        "default_branch": "main",
    }


def gitea_push_payload(branch: str, after: str, *, repository: str = SERVED) -> dict[str, Any]:
    return {
        "ref": f"refs/heads/{branch}",
        "before": "28e1879d029cb852e4844d9c718537df08844e03",
        "after": after,
        "compare_url": f"http://localhost:3000/{repository}/compare/28e1879d...{after[:8]}",
        "commits": [{"id": after, "message": "change", "url": "http://localhost:3000"}],
        "repository": _gitea_repository(repository),
        "pusher": {"id": 1, "login": "gitea", "username": "gitea"},
        "sender": {"id": 1, "login": "gitea", "username": "gitea"},
    }


def gitea_pull_request_payload(
    branch: str, number: int, sha: str, *, repository: str = SERVED
) -> dict[str, Any]:
    return {
        "action": "opened",
        "number": number,
        "pull_request": {
            "id": 1,
            "number": number,
            "user": {"id": 1, "login": "gitea"},
            "title": "Update README",
            "labels": [],
            "state": "open",
            "head": {"label": branch, "ref": branch, "sha": sha, "repo_id": 1,
                     "repo": _gitea_repository(repository)},
            "base": {"label": "main", "ref": "main", "sha": "0" * 39 + "1", "repo_id": 1,
                     "repo": _gitea_repository(repository)},
        },
        "repository": _gitea_repository(repository),
        "sender": {"id": 1, "login": "gitea"},
    }  # fmt: skip


def signed_gitea(
    secret: str, event: str, payload: dict[str, Any] | bytes
) -> tuple[bytes, dict[str, str]]:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return body, {
        "content-type": "application/json",
        "x-gitea-event": event,
        "x-gitea-delivery": str(uuid.uuid4()),
        "x-gitea-signature": signature,
    }


def gitea_push(
    secret: str, branch: str, after: str, *, repository: str = SERVED
) -> tuple[bytes, dict[str, str]]:
    return signed_gitea(secret, "push", gitea_push_payload(branch, after, repository=repository))
