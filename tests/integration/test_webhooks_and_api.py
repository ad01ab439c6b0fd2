"""Webhooks and the API over real HTTP against a real `shipyard serve`.

The poller is set to an hour, so anything that happens within a test happened because
a webhook or an API call made it happen.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.gitrepos import Upstream
from tests.integration.controller_harness import Shipyard, manifest, preview_of, seed, wait_for
from tests.integration.webhook_payloads import (
    SERVED,
    gitea_push,
    github_delete,
    github_pull_request,
    github_push,
    gitlab_push,
    signed_github,
)
from tests.integration.wire import open_upload, read_reply

SECRET = "s3cret-webhook-key"
READ = "read-token-123"
WRITE = "write-token-456"


@pytest.fixture
def shipyard(upstream: Upstream, tmp_path: Path) -> Iterator[Shipyard]:
    seed(upstream, "alpha", "beta")
    running = Shipyard(
        upstream.bare,
        tmp_path / "state",
        "--webhook-secret", SECRET, "--read-token", READ, "--write-token", WRITE,
        "--github-repo", SERVED, "--gitlab-project", SERVED, "--gitea-repo", SERVED,
        poll_interval="1h",
        token=READ,
    ).start()  # fmt: skip
    try:
        yield running
    finally:
        running.close()


def post(shipyard: Shipyard, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return shipyard.http.post(shipyard.api(path), content=body, headers=headers)


class TestWebhookRejections:
    def test_missing_signature_is_401(self, shipyard: Shipyard) -> None:
        body, headers = signed_github(SECRET, "push", github_push("x", "a" * 40))
        del headers["x-hub-signature-256"]
        reply = post(shipyard, "/hooks/github", body, headers)
        assert (reply.status_code, reply.json()["error"]) == (
            401,
            "missing X-Hub-Signature-256 header",
        )

    def test_wrong_signature_is_401(self, shipyard: Shipyard) -> None:
        body, headers = signed_github("not-the-secret", "push", github_push("x", "a" * 40))
        reply = post(shipyard, "/hooks/github", body, headers)
        assert reply.status_code == 401
        assert "does not match" in reply.json()["error"]

    def test_tampered_body_is_401(self, shipyard: Shipyard) -> None:
        body, headers = signed_github(SECRET, "push", github_push("x", "a" * 40))
        tampered = body.replace(b"refs/heads/x", b"refs/heads/y")
        assert tampered != body
        reply = post(shipyard, "/hooks/github", tampered, headers)
        assert reply.status_code == 401

    def test_malformed_json_is_400_after_the_signature(self, shipyard: Shipyard) -> None:
        body, headers = signed_github(SECRET, "push", b"{not json")
        reply = post(shipyard, "/hooks/github", body, headers)
        assert reply.status_code == 400
        assert "not valid JSON" in reply.json()["error"]

    def test_oversized_body_is_413(self, shipyard: Shipyard) -> None:
        body, headers = signed_github(SECRET, "push", b"{" + b" " * (6 * 1024 * 1024) + b"}")
        reply = post(shipyard, "/hooks/github", body, headers)
        assert reply.status_code == 413

    def test_unused_events_are_accepted_and_ignored(self, shipyard: Shipyard) -> None:
        body, headers = signed_github(SECRET, "issues", {"action": "opened"})
        reply = post(shipyard, "/hooks/github", body, headers)
        assert reply.status_code == 202
        assert "does not use issues events" in reply.json()["status"]

    def test_ping_answers(self, shipyard: Shipyard) -> None:
        body, headers = signed_github(SECRET, "ping", {"zen": "Keep it logically awesome."})
        assert post(shipyard, "/hooks/github", body, headers).json() == {"status": "pong"}

    def test_gitlab_needs_its_token(self, shipyard: Shipyard) -> None:
        body, headers = gitlab_push("wrong", "main", "a" * 40)
        assert post(shipyard, "/hooks/gitlab", body, headers).status_code == 401


def test_push_webhook_deploys_the_preview_without_waiting_for_the_poller(
    shipyard: Shipyard, upstream: Upstream
) -> None:
    sha = upstream.commit({"agents/alpha.yaml": manifest("alpha", temperature=0.9)}, branch="hot")
    upstream.push("hot")
    body, headers = signed_github(SECRET, "push", github_push("hot", sha))
    reply = post(shipyard, "/hooks/github", body, headers)
    assert reply.status_code == 200
    environment = preview_of("hot")
    version = shipyard.wait_desired("alpha", environment, sha)
    shipyard.wait_version("alpha", environment, version)
    # The same delivery again is recognised and not processed twice.
    replay = post(shipyard, "/hooks/github", body, headers)
    assert replay.json()["status"] == "duplicate"


@pytest.mark.parametrize("provider", ["gitlab", "gitea"])
def test_gitlab_and_gitea_pushes_sync_too(
    shipyard: Shipyard, upstream: Upstream, provider: str
) -> None:
    branch = f"from-{provider}"
    sha = upstream.commit({"agents/beta.yaml": manifest("beta", temperature=0.8)}, branch=branch)
    upstream.push(branch)
    body, headers = (gitlab_push if provider == "gitlab" else gitea_push)(SECRET, branch, sha)
    assert post(shipyard, f"/hooks/{provider}", body, headers).status_code == 200
    shipyard.wait_desired("beta", preview_of(branch), sha)


def test_a_burst_for_one_branch_ends_at_its_newest_commit(
    shipyard: Shipyard, upstream: Upstream
) -> None:
    shas = []
    for step in range(5):
        shas.append(
            upstream.commit(
                {"agents/alpha.yaml": manifest("alpha", temperature=0.1 * (step + 1))},
                branch="burst",
            )
        )
        upstream.push("burst")
        body, headers = signed_github(SECRET, "push", github_push("burst", shas[-1]))
        assert post(shipyard, "/hooks/github", body, headers).status_code == 200
    version = shipyard.wait_desired("alpha", preview_of("burst"), shas[-1])
    shipyard.wait_version("alpha", preview_of("burst"), version)
    commits = {r.commit for r in shipyard.rollouts("alpha", preview_of("burst"))}
    assert shas[-1] in commits
    assert len(commits) < len(shas)


def test_delete_webhook_tears_the_preview_down(shipyard: Shipyard, upstream: Upstream) -> None:
    sha = upstream.commit({"agents/beta.yaml": manifest("beta", temperature=0.2)}, branch="gone")
    upstream.push("gone")
    body, headers = signed_github(SECRET, "push", github_push("gone", sha))
    post(shipyard, "/hooks/github", body, headers)
    environment = preview_of("gone")
    wait_for(lambda: shipyard.serving("beta", environment), what="the preview")
    upstream.push(":gone")
    body, headers = signed_github(SECRET, "delete", github_delete("gone"))
    assert post(shipyard, "/hooks/github", body, headers).status_code == 200
    wait_for(lambda: environment not in shipyard.environments(), what="the teardown")


def test_pull_request_event_is_accepted(shipyard: Shipyard, upstream: Upstream) -> None:
    sha = upstream.commit({"agents/beta.yaml": manifest("beta", temperature=0.6)}, branch="pr")
    upstream.push("pr")
    body, headers = signed_github(SECRET, "pull_request", github_pull_request("pr", 7, sha))
    reply = post(shipyard, "/hooks/github", body, headers)
    assert reply.json() == {"status": "pull request #7 noted"}
    shipyard.wait_desired("beta", preview_of("pr"), sha)


class TestApiAuth:
    def test_reads_need_a_token(self, shipyard: Shipyard) -> None:
        anonymous = httpx.get(shipyard.api("/api/v1/environments"), timeout=5)
        assert anonymous.status_code == 401
        assert anonymous.headers["www-authenticate"] == "Bearer"
        wrong = httpx.get(
            shipyard.api("/api/v1/environments"),
            headers={"authorization": "Bearer nope"},
            timeout=5,
        )
        assert wrong.status_code == 401

    def test_read_token_cannot_write(self, shipyard: Shipyard) -> None:
        reply = shipyard.http.post(
            shipyard.api("/api/v1/sync"), headers={"authorization": f"Bearer {READ}"}
        )
        assert reply.status_code == 403

    def test_write_token_reads_and_writes(self, shipyard: Shipyard) -> None:
        headers = {"authorization": f"Bearer {WRITE}"}
        assert shipyard.http.get(shipyard.api("/api/v1/agents"), headers=headers).status_code == 200
        reply = shipyard.http.post(shipyard.api("/api/v1/sync"), headers=headers)
        assert reply.status_code == 202

    def test_a_body_without_a_token_is_refused_before_it_is_read(self, shipyard: Shipyard) -> None:
        # Declares 200 MB and sends none of it: the answer comes from the headers alone.
        upload = open_upload(
            shipyard.port,
            "/api/v1/environments/production/agents/alpha/undo",
            {"content-type": "application/json"},
            200_000_000,
        )
        reply = read_reply(upload)
        assert reply.status == 401
        assert reply.headers["connection"] == "close"
        upload = open_upload(
            shipyard.port,
            "/api/v1/environments/production/agents/alpha/pause",
            {"content-type": "application/json", "authorization": f"Bearer {READ}"},
            200_000_000,
        )
        assert read_reply(upload).status == 403

    def test_a_large_body_is_413_even_with_a_token(self, shipyard: Shipyard) -> None:
        write = {"authorization": f"Bearer {WRITE}", "content-type": "application/json"}
        upload = open_upload(
            shipyard.port, "/api/v1/environments/production/agents/alpha/pause", write, 200_000_000
        )
        assert read_reply(upload).status == 413
        streamed = open_upload(
            shipyard.port, "/api/v1/environments/production/agents/alpha/pause", write, None
        )
        streamed.sendall(b"10000\r\n" + b" " * 0x10000 + b"\r\n" + b"10000\r\n" + b" " * 0x10000)
        assert read_reply(streamed).status == 413
        assert shipyard.serving("alpha", "production") is not None

    def test_health_and_openapi_stay_open(self, shipyard: Shipyard) -> None:
        assert httpx.get(shipyard.api("/healthz"), timeout=5).json() == {"status": "ok"}
        spec = httpx.get(shipyard.api("/openapi.json"), timeout=5).json()
        assert "/api/v1/environments/{environment}/agents/{agent}/undo" in spec["paths"]


def test_undo_pins_the_previous_version_and_resume_lifts_it(
    shipyard: Shipyard, upstream: Upstream
) -> None:
    write = {"authorization": f"Bearer {WRITE}", "x-shipyard-actor": "ann"}
    first = shipyard.serving("alpha", "production")
    assert first is not None
    sha = upstream.commit({"agents/alpha.yaml": manifest("alpha", temperature=1.5)}, branch="main")
    upstream.push("main")
    shipyard.http.post(shipyard.api("/api/v1/sync"), headers=write)
    second = shipyard.wait_desired("alpha", "production", sha)
    shipyard.wait_version("alpha", "production", second)

    path = "/api/v1/environments/production/agents/alpha"
    reply = shipyard.http.post(
        shipyard.api(f"{path}/undo"), json={"reason": "too creative"}, headers=write
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["rollout"]["to_version"] == first["version"]
    assert shipyard.serving("alpha", "production") == first
    described = shipyard.http.get(shipyard.api(path), headers=write).json()
    assert described["pin"]["version"] == first["version"]
    assert described["pin"]["actor"] == "ann"
    assert described["agent"]["state"] == "Pinned"
    # Syncing does not bring the undone version back while pinned.
    shipyard.http.post(shipyard.api("/api/v1/sync"), headers=write)
    shipyard.http.post(shipyard.api("/api/v1/sync"), headers=write)
    assert shipyard.serving("alpha", "production") == first

    reply = shipyard.http.post(shipyard.api(f"{path}/resume"), headers=write)
    assert reply.json() == {"resumed": True}
    shipyard.wait_version("alpha", "production", second)


def test_pausing_during_a_rollout_is_refused_rather_than_claiming_the_old_version(
    shipyard: Shipyard, upstream: Upstream
) -> None:
    write = {"authorization": f"Bearer {WRITE}"}
    slow = manifest(
        "alpha", temperature=1.1, command='["sh", "-c", "sleep 30; exec python3 agent/server.py"]'
    ).replace("progressDeadlineSeconds: 20", "progressDeadlineSeconds: 120")
    upstream.commit({"agents/alpha.yaml": slow}, branch="main")
    upstream.push("main")
    shipyard.http.post(shipyard.api("/api/v1/sync"), headers=write)

    def progressing() -> bool:
        reply = shipyard.http.get(
            shipyard.api("/api/v1/rollouts?agent=alpha&environment=production"), headers=write
        )
        return any(item["result"] == "Progressing" for item in reply.json()["items"])

    wait_for(lambda: progressing() or None, 60, "the slow rollout to start")
    reply = shipyard.http.post(
        shipyard.api("/api/v1/environments/production/agents/alpha/pause"), json={}, headers=write
    )
    assert reply.status_code == 409, reply.text
    assert "is rolling out" in reply.json()["detail"]
    described = shipyard.http.get(
        shipyard.api("/api/v1/environments/production/agents/alpha"), headers=write
    ).json()
    assert described["pin"] is None


def test_api_errors_name_what_exists(shipyard: Shipyard) -> None:
    write = {"authorization": f"Bearer {WRITE}"}
    reply = shipyard.http.post(
        shipyard.api("/api/v1/environments/nowhere/agents/alpha/pause"), json={}, headers=write
    )
    assert reply.status_code == 404
    assert 'environment "nowhere" not found (known: production)' in reply.json()["detail"]
    reply = shipyard.http.post(
        shipyard.api("/api/v1/environments/production/agents/alpha/undo"),
        json={"toRevision": 99},
        headers=write,
    )
    assert reply.status_code == 404
    assert "revision 99" in reply.json()["detail"]
    bad = shipyard.http.post(
        shipyard.api("/api/v1/environments/production/agents/alpha/undo"),
        content=json.dumps({"toRevision": "x"}),
        headers={**write, "content-type": "application/json"},
    )
    assert bad.status_code == 422
    huge = shipyard.http.post(
        shipyard.api("/api/v1/environments/production/agents/alpha/undo"),
        json={"toRevision": 10**30},
        headers=write,
    )
    assert huge.status_code == 422, huge.text
