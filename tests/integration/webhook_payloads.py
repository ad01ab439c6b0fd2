"""Webhook deliveries in the shapes GitHub, GitLab and Gitea document, signed like theirs."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from typing import Any


def github_push(branch: str, after: str, *, deleted: bool = False) -> dict[str, Any]:
    return {
        "ref": f"refs/heads/{branch}",
        "before": "0" * 40,
        "after": "0" * 40 if deleted else after,
        "created": False,
        "deleted": deleted,
        "forced": False,
        "repository": {"full_name": "acme/agents", "default_branch": "main"},
        "pusher": {"name": "ann"},
        "head_commit": None if deleted else {"id": after, "message": "change"},
    }


def github_pull_request(
    branch: str, number: int, sha: str, *, fork: bool = False, labels: tuple[str, ...] = ()
) -> dict[str, Any]:
    head_repo = "someone/agents" if fork else "acme/agents"
    return {
        "action": "opened",
        "number": number,
        "pull_request": {
            "number": number,
            "state": "open",
            "head": {"ref": branch, "sha": sha, "repo": {"full_name": head_repo}},
            "base": {"ref": "main", "repo": {"full_name": "acme/agents"}},
            "labels": [{"name": name} for name in labels],
        },
        "repository": {"full_name": "acme/agents"},
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


def gitlab_push(secret: str, branch: str, after: str) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(
        {"object_kind": "push", "ref": f"refs/heads/{branch}", "after": after, "before": "0" * 40}
    ).encode()
    return body, {
        "content-type": "application/json",
        "x-gitlab-event": "Push Hook",
        "x-gitlab-token": secret,
        "x-gitlab-event-uuid": str(uuid.uuid4()),
    }


def gitea_push(secret: str, branch: str, after: str) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"ref": f"refs/heads/{branch}", "after": after}).encode()
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return body, {
        "content-type": "application/json",
        "x-gitea-event": "push",
        "x-gitea-delivery": str(uuid.uuid4()),
        "x-gitea-signature": signature,
    }
