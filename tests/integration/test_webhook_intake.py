"""Hostile webhook traffic against a real `shipyard serve`: refused clearly, nothing lost.

Covers what an attacker who can reach `/hooks/*` (with or without the secret) can try:
bodies that are huge, stalled, abandoned or deeply nested; signed payloads of strange
shapes; deliveries about other repositories; and a flood of stalled uploads while a
real forge keeps delivering (a full disk: `test_webhook_disk_full`). The poller is at
one hour, so every sync seen here was caused by a delivery.
"""

from __future__ import annotations

import json
import resource
import select
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.github import DEFAULT_TOKEN as GITHUB_TOKEN
from tests.fakes.github import fake_github
from tests.gitrepos import Upstream
from tests.integration.controller_harness import Shipyard, manifest, preview_of, seed, wait_for
from tests.integration.webhook_payloads import (
    SERVED,
    gitea_pull_request_payload,
    gitea_push,
    github_pull_request,
    github_push,
    gitlab_headers,
    gitlab_merge_request_payload,
    gitlab_push,
    signed_gitea,
    signed_github,
)
from tests.integration.wire import open_upload, read_reply

SECRET = "s3cret-webhook-key"
LIMIT = 5 * 1024 * 1024
EVIL = "evil/agents"
SERVED_REPO = {"full_name": SERVED}


@pytest.fixture
def shipyard(upstream: Upstream, tmp_path: Path) -> Iterator[Shipyard]:
    seed(upstream, "alpha")
    running = Shipyard(
        upstream.bare, tmp_path / "state",
        "--webhook-secret", SECRET, "--webhook-body-timeout", "3s", "--header-timeout", "2s",
        "--github-repo", SERVED, "--gitlab-project", SERVED, "--gitea-repo", SERVED,
        poll_interval="1h",
    ).start()  # fmt: skip
    try:
        yield running
    finally:
        running.close()


def post(shipyard: Shipyard, provider: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return shipyard.http.post(shipyard.api(f"/hooks/{provider}"), content=body, headers=headers)


def log_of(shipyard: Shipyard) -> str:
    return shipyard.log.read_text(errors="replace")


def assert_no_traceback(shipyard: Shipyard) -> None:
    log = log_of(shipyard)
    assert "Traceback" not in log, log[-3000:]
    assert httpx.get(shipyard.api("/healthz"), timeout=10).status_code == 200


def github_headers_unsigned() -> dict[str, str]:
    _, headers = signed_github(SECRET, "push", {})
    return headers


class TestRefusedBeforeTheBodyIsRead:
    def test_a_declared_oversize_body_is_413_at_once(self, shipyard: Shipyard) -> None:
        connection = open_upload(
            shipyard.port, "/hooks/github", github_headers_unsigned(), 50_000_000
        )
        reply = read_reply(connection)  # no byte of the body was sent
        assert reply.status == 413
        assert "over the limit" in json.loads(reply.body)["error"]
        assert reply.headers["connection"] == "close"

    def test_a_missing_signature_is_401_at_once(self, shipyard: Shipyard) -> None:
        headers = github_headers_unsigned()
        del headers["x-hub-signature-256"]
        reply = read_reply(open_upload(shipyard.port, "/hooks/github", headers, 4_900_000))
        assert (reply.status, json.loads(reply.body)["error"]) == (
            401,
            "missing X-Hub-Signature-256 header",
        )

    def test_a_wrong_gitlab_token_is_401_at_once(self, shipyard: Shipyard) -> None:
        headers = gitlab_headers("not-the-secret", "Push Hook")
        reply = read_reply(open_upload(shipyard.port, "/hooks/gitlab", headers, 4_900_000))
        assert reply.status == 401

    def test_a_chunked_body_is_413_once_it_passes_the_limit(self, shipyard: Shipyard) -> None:
        connection = open_upload(shipyard.port, "/hooks/github", github_headers_unsigned(), None)
        piece = b"x" * 65536
        sent = 0
        while sent <= LIMIT:
            connection.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            sent += len(piece)
        reply = read_reply(connection)
        assert reply.status == 413
        assert_no_traceback(shipyard)


class TestSlowAndAbandonedUploads:
    def test_a_stalled_body_is_408_with_one_log_line(self, shipyard: Shipyard) -> None:
        body, headers = signed_github(SECRET, "push", github_push("x", "a" * 40))
        connection = open_upload(shipyard.port, "/hooks/github", headers, len(body), body[:10])
        reply = read_reply(connection)
        assert reply.status == 408
        assert "did not arrive within 3s" in json.loads(reply.body)["error"]
        assert log_of(shipyard).count("refused with 408") == 1
        assert_no_traceback(shipyard)

    def test_an_abandoned_upload_leaves_one_line_and_no_traceback(self, shipyard: Shipyard) -> None:
        connection = open_upload(
            shipyard.port, "/hooks/github", github_headers_unsigned(), 4_900_000, b"x" * 200_000
        )
        connection.close()
        wait_for(lambda: "disconnected mid-upload" in log_of(shipyard), what="the refusal line")
        assert_no_traceback(shipyard)

    def test_a_signed_delivery_streams_through_in_pieces(
        self, shipyard: Shipyard, upstream: Upstream
    ) -> None:
        sha = upstream.commit(
            {"agents/alpha.yaml": manifest("alpha", temperature=0.3)}, branch="drip"
        )
        upstream.push("drip")
        body, headers = signed_github(SECRET, "push", github_push("drip", sha))
        connection = open_upload(shipyard.port, "/hooks/github", headers, len(body))
        for start in range(0, len(body), 100):
            connection.sendall(body[start : start + 100])
        reply = read_reply_keepalive(connection)
        assert reply == 200
        shipyard.wait_desired("alpha", preview_of("drip"), sha)


def test_connections_that_never_finish_their_headers_are_closed(shipyard: Shipyard) -> None:
    silent = socket.create_connection(("127.0.0.1", shipyard.port), timeout=60)
    partial = socket.create_connection(("127.0.0.1", shipyard.port), timeout=60)
    partial.sendall(b"POST /hooks/github HTTP/1.1\r\nhost: 127.0.0.1\r\n")
    second = socket.create_connection(("127.0.0.1", shipyard.port), timeout=60)
    second.sendall(b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
    assert read_reply_keepalive(second, close=False) == 200
    second.sendall(b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n")  # and no more
    for connection in (silent, partial, second):
        # Read until the server closes (a socket timeout here fails the test); the second
        # connection still holds the first response's body, but no second response.
        assert b"HTTP/1.1" not in read_until_closed(connection)
    assert_no_traceback(shipyard)


def read_until_closed(connection: socket.socket) -> bytes:
    data = b""
    try:
        while chunk := connection.recv(65536):
            data += chunk
    finally:
        connection.close()
    return data


def read_reply_keepalive(connection: socket.socket, *, close: bool = True) -> int:
    """The status of a successful response, which leaves the connection open."""
    connection.settimeout(30)
    data = b""
    while b"\r\n\r\n" not in data:
        data += connection.recv(4096)
    if close:
        connection.close()
    return int(data.split(b" ", 2)[1])


class TestOtherRepositories:
    def test_a_push_about_another_repository_changes_nothing(
        self, shipyard: Shipyard, upstream: Upstream
    ) -> None:
        sha = upstream.commit(
            {"agents/alpha.yaml": manifest("alpha", temperature=0.7)}, branch="theirs"
        )
        upstream.push("theirs")
        deliveries = [
            ("github", *signed_github(SECRET, "push", github_push("theirs", sha, repository=EVIL))),
            ("gitlab", *gitlab_push(SECRET, "theirs", sha, project="evil/group/agents")),
            ("gitea", *gitea_push(SECRET, "theirs", sha, repository=EVIL)),
        ]
        for provider, body, headers in deliveries:
            reply = post(shipyard, provider, body, headers)
            assert reply.status_code == 202, (provider, reply.text)
            assert reply.json()["status"].startswith("ignored: other repository (evil/")
        # The sink logs every sync it queues before the reply is sent.
        assert "push to theirs" not in log_of(shipyard)

    def test_pull_requests_of_another_repository_are_not_recorded(self, shipyard: Shipyard) -> None:
        sha = "b" * 40
        merge_request = gitlab_merge_request_payload("main", 5, sha, project=EVIL)
        deliveries = [
            (
                "github",
                *signed_github(
                    SECRET, "pull_request", github_pull_request("main", 5, sha, repository=EVIL)
                ),
            ),
            (
                "gitlab",
                json.dumps(merge_request).encode(),
                gitlab_headers(SECRET, "Merge Request Hook"),
            ),
            (
                "gitea",
                *signed_gitea(
                    SECRET,
                    "pull_request",
                    gitea_pull_request_payload("main", 5, sha, repository=EVIL),
                ),
            ),
        ]
        for provider, body, headers in deliveries:
            reply = post(shipyard, provider, body, headers)
            assert reply.json() == {"status": "ignored: other repository (evil/agents)"}
        log = log_of(shipyard)
        assert "request 5" not in log
        assert "push to main" not in log

    def test_names_match_without_regard_to_case(
        self, shipyard: Shipyard, upstream: Upstream
    ) -> None:
        sha = upstream.commit(
            {"agents/alpha.yaml": manifest("alpha", temperature=0.8)}, branch="cased"
        )
        upstream.push("cased")
        body, headers = signed_github(
            SECRET, "push", github_push("cased", sha, repository=SERVED.upper())
        )
        assert post(shipyard, "github", body, headers).status_code == 200
        shipyard.wait_desired("alpha", preview_of("cased"), sha)


def _odd_payloads() -> list[tuple[str, str, Any]]:
    pull = github_pull_request("odd", 3, "d" * 40)
    merge = gitlab_merge_request_payload("odd", 3, "d" * 40)

    def changed(payload: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
        copy: dict[str, Any] = json.loads(json.dumps(payload))
        target: Any = copy
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        return copy

    return [
        ("github", "pull_request", changed(pull, ("pull_request", "head", "repo"), "a string")),
        ("github", "pull_request", changed(pull, ("pull_request", "base"), "a string")),
        ("github", "pull_request", changed(pull, ("pull_request", "head"), None)),
        ("github", "pull_request", changed(pull, ("pull_request",), "a string")),
        ("github", "pull_request", changed(pull, ("number",), "3")),
        ("github", "pull_request", changed(pull, ("number",), True)),
        ("github", "pull_request", changed(pull, ("number",), 10**30)),
        ("github", "pull_request", changed(pull, ("pull_request", "labels"), "bug")),
        ("github", "pull_request", changed(pull, ("pull_request", "labels"), [1, None, "x"])),
        ("github", "pull_request", changed(pull, ("repository",), None)),
        ("github", "pull_request", changed(pull, ("repository", "full_name"), 5)),
        ("github", "push", changed(github_push("odd", "d" * 40), ("ref",), 5)),
        ("github", "push", changed(github_push("odd", "d" * 40), ("after",), None)),
        ("github", "delete", {"ref": None, "ref_type": "branch", "repository": SERVED_REPO}),
        ("github", "push", [1, 2, 3]),
        ("github", "push", "a string"),
        ("github", "push", None),
        ("gitlab", "Merge Request Hook", changed(merge, ("object_attributes", "last_commit"), "x")),
        ("gitlab", "Merge Request Hook", changed(merge, ("object_attributes",), [])),
        ("gitlab", "Merge Request Hook", changed(merge, ("labels",), "x")),
        ("gitlab", "Merge Request Hook", changed(merge, ("project",), "x")),
        ("gitlab", "Merge Request Hook", changed(merge, ("object_attributes", "iid"), 10**30)),
        ("gitea", "pull_request", changed(gitea_pull_request_payload("odd", 3, "d" * 40),
                                          ("pull_request", "head", "repo"), "x")),
        ("gitea", "pull_request", changed(gitea_pull_request_payload("odd", 3, "d" * 40),
                                          ("number",), 10**30)),
    ]  # fmt: skip


class TestOddlyShapedSignedPayloads:
    def test_every_shape_is_answered_2xx_or_400(self, shipyard: Shipyard) -> None:
        answers = []
        for provider, event, payload in _odd_payloads():
            raw = json.dumps(payload).encode()
            if provider == "gitlab":
                body, headers = raw, gitlab_headers(SECRET, event)
            elif provider == "gitea":
                body, headers = signed_gitea(SECRET, event, raw)
            else:
                body, headers = signed_github(SECRET, event, raw)
            reply = post(shipyard, provider, body, headers)
            answers.append((provider, event, reply.status_code, reply.text))
        assert all(status in {200, 202, 400} for _, _, status, _ in answers), answers
        assert any(status == 400 for _, _, status, _ in answers)
        assert_no_traceback(shipyard)

    def test_deep_nesting_is_400(self, shipyard: Shipyard) -> None:
        deep = b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
        for provider in ("github", "gitlab", "gitea"):
            if provider == "gitlab":
                body, headers = deep, gitlab_headers(SECRET, "Push Hook")
            elif provider == "gitea":
                body, headers = signed_gitea(SECRET, "push", deep)
            else:
                body, headers = signed_github(SECRET, "push", deep)
            reply = post(shipyard, provider, body, headers)
            assert reply.status_code == 400
            assert "nested too deeply" in reply.json()["error"]
        assert_no_traceback(shipyard)


@pytest.fixture
def crowded(upstream: Upstream, tmp_path: Path) -> Iterator[Shipyard]:
    """Four places for deliveries being read, a patient body timeout, no served name known
    (the remote is a local path)."""
    seed(upstream, "alpha")
    running = Shipyard(
        upstream.bare, tmp_path / "state",
        "--webhook-secret", SECRET, "--webhook-body-timeout", "60s", "--webhook-max-pending", "4",
        poll_interval="1h",
    ).start()  # fmt: skip
    try:
        yield running
    finally:
        running.close()


def test_a_flood_of_stalled_uploads_does_not_keep_a_delivery_out(
    crowded: Shipyard, upstream: Upstream
) -> None:
    sha = upstream.commit({"agents/alpha.yaml": manifest("alpha", temperature=0.9)}, branch="live")
    upstream.push("live")
    stalled = [
        open_upload(
            crowded.port, "/hooks/github", github_headers_unsigned(), 4_900_000, b"x" * 65536
        )
        for _ in range(12)
    ]
    try:
        # Beyond the four places, uploads are refused at once and told when to come back.
        readable, _, _ = select.select(stalled, [], [], 30)
        refused = [read_reply(connection) for connection in readable]
        assert refused
        assert all(reply.status == 503 for reply in refused)
        assert all(reply.headers["retry-after"] == "5" for reply in refused)
        assert httpx.get(crowded.api("/healthz"), timeout=10).status_code == 200

        # A real delivery gets in once a stalled upload has held its place too long.
        def delivered() -> bool:
            body, headers = signed_github(SECRET, "push", github_push("live", sha))
            return post(crowded, "github", body, headers).status_code == 200

        wait_for(delivered, what="a delivery to get through the flood")
        crowded.wait_desired("alpha", preview_of("live"), sha)
        assert crowded.serving("alpha", "production") is not None
    finally:
        for connection in stalled:
            connection.close()
    assert_no_traceback(crowded)


def test_without_a_served_name_pushes_act_and_pull_requests_are_not_recorded(
    crowded: Shipyard, upstream: Upstream
) -> None:
    body, headers = signed_github(SECRET, "pull_request", github_pull_request("x", 4, "f" * 40))
    assert post(crowded, "github", body, headers).json() == {
        "status": "ignored: the served repository is unknown "
        "(set --github-repo to accept pull requests)"
    }
    sha = upstream.commit({"agents/alpha.yaml": manifest("alpha", temperature=0.2)}, branch="any")
    upstream.push("any")
    body, headers = signed_github(SECRET, "push", github_push("any", sha, repository="who/ever"))
    assert post(crowded, "github", body, headers).status_code == 200
    crowded.wait_desired("alpha", preview_of("any"), sha)


def test_feedback_goes_only_to_the_served_repositorys_own_pull_request(
    upstream: Upstream, tmp_path: Path
) -> None:
    """A GitLab merge request !9 and another repository's pull request #9 both name the
    branch; were either filed with the GitHub notifier, it would comment on #9, which is
    an unrelated pull request of the served repository."""
    seed(upstream, "alpha")
    with fake_github() as github:
        github.state.add_pull(SERVED, 9, "unrelated")
        github.state.add_pull(SERVED, 12, "feature")
        token_file = tmp_path / "github-token"
        token_file.write_text(GITHUB_TOKEN)
        shipyard = Shipyard(
            upstream.bare, tmp_path / "state", "--webhook-secret", SECRET,
            "--github-api-url", github.url, "--github-token-file", str(token_file),
            "--github-repo", SERVED, "--gitlab-project", SERVED,
            poll_interval="1h",
        ).start()  # fmt: skip
        try:
            sha = upstream.commit(
                {"agents/alpha.yaml": manifest("alpha", temperature=0.6)}, branch="feature"
            )
            upstream.push("feature")
            foreign = github_pull_request("feature", 9, sha, repository=EVIL)
            body, headers = signed_github(SECRET, "pull_request", foreign)
            assert post(shipyard, "github", body, headers).status_code == 202
            merge_request = json.dumps(gitlab_merge_request_payload("feature", 9, sha)).encode()
            reply = post(
                shipyard, "gitlab", merge_request, gitlab_headers(SECRET, "Merge Request Hook")
            )
            assert reply.json() == {"status": "merge request !9 noted"}

            wait_for(
                lambda: github.state.pull_comments(SERVED, 12),
                what="the preview's comment on pull request #12",
            )
            assert github.state.pull_comments(SERVED, 9) == []
        finally:
            shipyard.close()


def test_idle_connections_beyond_the_inherited_soft_limit_leave_git_working(
    upstream: Upstream, tmp_path: Path
) -> None:
    """Started with a soft open-files limit of 256, the controller raises it to the hard
    limit, so 400 connections that never send a byte still leave descriptors for git."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1024:
        pytest.skip(f"the hard open-files limit ({hard}) is too low for this test")
    seed(upstream, "alpha")
    shipyard = Shipyard(
        upstream.bare, tmp_path / "state", "--webhook-secret", SECRET, poll_interval="1h"
    )
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    try:
        shipyard.process_only()  # inherits the low soft limit
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    idle: list[socket.socket] = []
    try:
        wait_for(shipyard._ready, what="the controller's first sync")
        assert shipyard.process is not None
        assert resource.prlimit(shipyard.process.pid, resource.RLIMIT_NOFILE)[0] == hard
        idle = [socket.create_connection(("127.0.0.1", shipyard.port)) for _ in range(400)]
        sha = upstream.commit(
            {"agents/alpha.yaml": manifest("alpha", temperature=0.4)}, branch="busy"
        )
        upstream.push("busy")
        body, headers = signed_github(SECRET, "push", github_push("busy", sha))
        assert post(shipyard, "github", body, headers).status_code == 200
        version = shipyard.wait_desired("alpha", preview_of("busy"), sha)
        shipyard.wait_version("alpha", preview_of("busy"), version)
    finally:
        for connection in idle:
            connection.close()
        shipyard.close()
    assert "Too many open files" not in log_of(shipyard)
