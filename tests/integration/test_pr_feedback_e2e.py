"""A running controller reports previews on pull requests: real git, real HTTP, fake GitHub."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.gitea import DEFAULT_TOKEN as GITEA_TOKEN
from tests.fakes.gitea import FakeGitea, fake_gitea
from tests.fakes.github import DEFAULT_TOKEN, FakeGitHub, fake_github
from tests.fakes.gitlab import DEFAULT_TOKEN as GITLAB_TOKEN
from tests.fakes.gitlab import fake_gitlab
from tests.gitrepos import Upstream
from tests.integration.controller_harness import Shipyard, manifest, preview_of, seed, wait_for
from tests.integration.webhook_payloads import gitea_pull_request_payload, signed_gitea

REPOSITORY = "acme/agents"


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with fake_github() as server:
        yield server


@pytest.fixture
def shipyard(upstream: Upstream, tmp_path: Path, github: FakeGitHub) -> Iterator[Shipyard]:
    seed(upstream, "alpha")
    token_file = tmp_path / "github-token"
    token_file.write_text(DEFAULT_TOKEN + "\n")
    running = Shipyard(
        upstream.bare, tmp_path / "state",
        "--github-api-url", github.url, "--github-token-file", str(token_file),
        "--github-repo", REPOSITORY,
    ).start()  # fmt: skip
    try:
        yield running
    finally:
        running.close()


def test_one_comment_per_pull_request_across_pushes_and_teardown(
    shipyard: Shipyard, upstream: Upstream, github: FakeGitHub
) -> None:
    github.state.add_pull(REPOSITORY, 12, "feature/chat")
    first = upstream.commit(
        {"agents/alpha.yaml": manifest("alpha", temperature=0.4)}, branch="feature/chat"
    )
    upstream.push("feature/chat")
    environment = preview_of("feature/chat")

    def statuses(sha: str) -> list[str]:
        return [s["state"] for s in github.state.commit_statuses(REPOSITORY, sha)]

    wait_for(lambda: "success" in statuses(first), what="a success status")
    assert statuses(first)[0] == "pending"
    success = github.state.commit_statuses(REPOSITORY, first)[-1]
    assert success["context"] == "shipyard/preview"
    assert success["target_url"] == shipyard_url(shipyard, environment)

    second = upstream.commit(
        {"agents/alpha.yaml": manifest("alpha", temperature=0.5)}, branch="feature/chat"
    )
    upstream.push("feature/chat")
    wait_for(lambda: "success" in statuses(second), what="the second push's status")
    wait_for(
        lambda: second[:7] in github.state.pull_comments(REPOSITORY, 12)[0]["body"],
        what="the comment to mention the new commit",
    )
    (comment,) = github.state.pull_comments(REPOSITORY, 12)
    assert environment in comment["body"]

    upstream.push(":feature/chat")
    wait_for(
        lambda: "torn down" in github.state.pull_comments(REPOSITORY, 12)[0]["body"].lower(),
        what="the comment to say the preview is gone",
    )
    assert len(github.state.pull_comments(REPOSITORY, 12)) == 1


def test_invalid_manifest_fails_the_status_with_the_error(
    shipyard: Shipyard, upstream: Upstream, github: FakeGitHub
) -> None:
    bad = upstream.commit({"agents/alpha.yaml": manifest("alpha", temperature=9)}, branch="oops")
    upstream.push("oops")

    def failure() -> dict[str, str] | None:
        found = [
            s for s in github.state.commit_statuses(REPOSITORY, bad) if s["state"] == "failure"
        ]
        return found[-1] if found else None

    status = wait_for(failure, what="a failure status")
    assert "temperature" in status["description"]


def test_github_outage_never_blocks_deployment(
    shipyard: Shipyard, upstream: Upstream, github: FakeGitHub
) -> None:
    github.stop()
    sha = upstream.commit({"agents/alpha.yaml": manifest("alpha", temperature=0.3)}, branch="down")
    upstream.push("down")
    version = shipyard.wait_desired("alpha", preview_of("down"), sha)
    shipyard.wait_version("alpha", preview_of("down"), version)


def shipyard_url(shipyard: Shipyard, environment: str) -> str:
    return f"http://alpha--{environment}.localhost:{shipyard.port}/"


def test_gitlab_merge_request_gets_a_status_and_one_note(
    upstream: Upstream, tmp_path: Path
) -> None:
    seed(upstream, "alpha")
    with fake_gitlab() as gitlab:
        gitlab.state.add_merge_request("group/agents", 4, "feature/gl")
        token_file = tmp_path / "gitlab-token"
        token_file.write_text(GITLAB_TOKEN + "\n")
        running = Shipyard(
            upstream.bare, tmp_path / "state",
            "--gitlab-api-url", gitlab.url, "--gitlab-token-file", str(token_file),
            "--gitlab-project", "group/agents",
        ).start()  # fmt: skip
        try:
            for temperature in (0.4, 0.5):
                sha = upstream.commit(
                    {"agents/alpha.yaml": manifest("alpha", temperature=temperature)},
                    branch="feature/gl",
                )
                upstream.push("feature/gl")
                wait_for(
                    lambda sha=sha: any(  # type: ignore[misc]
                        s["status"] == "success"
                        for s in gitlab.state.commit_statuses("group/agents", sha)
                    ),
                    what="a success status on GitLab",
                )
            wait_for(
                lambda: sha[:7] in gitlab.state.mr_notes("group/agents", 4)[-1]["body"],
                what="the note to mention the newest commit",
            )
            notes = [
                n
                for n in gitlab.state.mr_notes("group/agents", 4)
                if "shipyard:preview" in n["body"]
            ]
            assert len(notes) == 1
        finally:
            running.close()


def test_gitea_pull_request_named_by_a_webhook_gets_a_status_and_one_comment(
    upstream: Upstream, tmp_path: Path
) -> None:
    seed(upstream, "alpha")
    secret = "whsec-gitea-e2e"
    with fake_gitea() as gitea:
        gitea.state.add_pull(REPOSITORY, 9, "feature/gt")
        token_file = tmp_path / "gitea-token"
        token_file.write_text(GITEA_TOKEN + "\n")
        running = Shipyard(
            upstream.bare, tmp_path / "state",
            "--gitea-api-url", gitea.url, "--gitea-token-file", str(token_file),
            "--gitea-repo", REPOSITORY, "--webhook-secret", secret,
        ).start()  # fmt: skip
        try:
            first = upstream.commit(
                {"agents/alpha.yaml": manifest("alpha", temperature=0.4)}, branch="feature/gt"
            )
            # The webhook names the pull request before the push is deployed: the comment
            # goes there without asking Gitea which pull requests the branch has.
            body, headers = signed_gitea(
                secret, "pull_request", gitea_pull_request_payload("feature/gt", 9, first)
            )
            delivered = running.http.post(
                running.api("/hooks/gitea"), content=body, headers=headers
            )
            assert delivered.status_code == 200, delivered.text
            push_and_wait_for_success(upstream, gitea, first)
            sha = upstream.commit(
                {"agents/alpha.yaml": manifest("alpha", temperature=0.5)}, branch="feature/gt"
            )
            push_and_wait_for_success(upstream, gitea, sha)
            wait_for(
                lambda: any(sha[:7] in c["body"] for c in gitea.state.pull_comments(REPOSITORY, 9)),
                what="the comment to mention the newest commit",
            )
            [comment] = gitea.state.pull_comments(REPOSITORY, 9)
            assert preview_of("feature/gt") in comment["body"]
            assert gitea.state.calls_to("GET", rf"/api/v1/repos/{REPOSITORY}/pulls") == []
        finally:
            running.close()


def push_and_wait_for_success(upstream: Upstream, gitea: FakeGitea, sha: str) -> None:
    upstream.push("feature/gt")
    wait_for(
        lambda: any(
            s["status"] == "success" and s["context"] == "shipyard/preview"
            for s in gitea.state.commit_statuses(REPOSITORY, sha)
        ),
        what="a success status on Gitea",
    )
