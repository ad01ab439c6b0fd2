"""A running controller reports previews on pull requests: real git, real HTTP, fake GitHub."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.github import DEFAULT_TOKEN, FakeGitHub, fake_github
from tests.fakes.gitlab import DEFAULT_TOKEN as GITLAB_TOKEN
from tests.fakes.gitlab import fake_gitlab
from tests.gitrepos import Upstream
from tests.integration.controller_harness import Shipyard, manifest, preview_of, seed, wait_for

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
