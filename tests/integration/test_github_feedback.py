"""Pull request feedback over real HTTP against the fake GitHub: statuses, deployments, one comment.

Each test drives the real `GitHubNotifier` (its own httpx client, its own retries)
against `tests.fakes.github` on a loopback port, and judges only what GitHub would have
recorded.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator

import pytest

from preview.feedback import MAX_DESCRIPTION, AgentReport, ReportState
from preview.github import GitHubNotifier, repository_from_remote
from tests.fakes.github import DEFAULT_TOKEN, FakeGitHub, fake_github
from tests.integration import forge_feedback
from tests.integration.forge_feedback import BRANCH, ENV, REPO, SHA, SHAS, URL, deliver, report

PR = 7
STATUS = rf"/repos/{REPO}/statuses/[0-9a-f]+"
COMMENTS = rf"/repos/{REPO}/issues/{PR}/comments"
COMMENT = rf"/repos/{REPO}/issues/comments/\d+"


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with fake_github() as server:
        yield server


def notifier_for(github: FakeGitHub, token: str | None = DEFAULT_TOKEN) -> GitHubNotifier:
    # Millisecond backoff keeps retry tests fast; Retry-After is still honoured as given.
    return GitHubNotifier(github.url, token, backoff_base=0.01)


def drive(
    github: FakeGitHub,
    scenario: Callable[[GitHubNotifier], Awaitable[None]],
    *,
    notify_pr: bool = True,
) -> None:
    forge_feedback.drive(lambda: notifier_for(github), scenario, pull=PR if notify_pr else None)


def our_statuses(github: FakeGitHub, sha: str = SHA) -> list[dict[str, object]]:
    return [
        s for s in github.state.commit_statuses(REPO, sha) if s["context"] == "shipyard/preview"
    ]


def test_status_goes_pending_then_success_with_the_preview_url(github: FakeGitHub) -> None:
    github.state.add_pull(REPO, PR, BRANCH)

    drive(github, lambda n: deliver(n, report("pending"), report("success")))

    statuses = our_statuses(github)
    assert [s["state"] for s in statuses] == ["pending", "success"]
    assert statuses[1]["target_url"] == URL
    assert statuses[1]["description"] == "2 agents ready"
    [deployment] = github.state.deployments_of(REPO, ENV)
    assert deployment["sha"] == SHA
    assert deployment["transient_environment"] is True
    assert deployment["production_environment"] is False
    assert github.state.states_of(deployment["id"]) == ["in_progress", "success"]
    created = github.state.calls_to("POST", rf"/repos/{REPO}/deployments")[0].json
    assert created["auto_merge"] is False
    assert created["required_contexts"] == []
    success = github.state.deployment_statuses[deployment["id"]][-1]
    assert success["environment_url"] == URL
    for call in github.state.calls:
        assert call.headers["authorization"] == f"Bearer {DEFAULT_TOKEN}"
        assert call.headers["accept"] == "application/vnd.github+json"
        assert call.headers["x-github-api-version"] == "2022-11-28"
        assert call.headers["user-agent"].startswith("shipyard")


def test_failure_summarises_the_first_problem_in_status_and_comment(github: FakeGitHub) -> None:
    github.state.add_pull(REPO, PR, BRANCH)
    problems = (
        "agents/support.yaml:4:3: spec.modle: unknown field, did you mean 'model'? " + "x" * 150,
        "agents/triage.yaml:9:5: spec.prompt.file: prompts/missing.md does not exist",
    )

    drive(github, lambda n: deliver(n, report("failure", problems=problems)))

    [status] = our_statuses(github)
    assert status["state"] == "failure"
    description = str(status["description"])
    assert len(description) <= MAX_DESCRIPTION
    assert description.startswith("agents/support.yaml:4:3: spec.modle: unknown field")
    assert description.endswith("(+1 more)")
    [deployment] = github.state.deployments_of(REPO, ENV)
    assert github.state.states_of(deployment["id"]) == ["failure"]
    [comment] = github.state.pull_comments(REPO, PR)
    assert "prompts/missing.md does not exist" in comment["body"]
    assert "spec.modle" in comment["body"]


def test_exactly_one_comment_across_three_pushes_updated_in_place(github: FakeGitHub) -> None:
    github.state.add_pull(REPO, PR, BRANCH)
    github.state.add_comment(REPO, PR, "Looks good, but see the preview.")

    drive(github, lambda n: deliver(n, *(report("success", sha) for sha in SHAS)))

    ours = [c for c in github.state.pull_comments(REPO, PR) if c["user"]["login"] != "reviewer"]
    assert len(ours) == 1
    assert len(github.state.calls_to("POST", COMMENTS)) == 1
    assert len(github.state.calls_to("PATCH", COMMENT)) == 2
    body = ours[0]["body"]
    assert body.startswith(f"<!-- shipyard:preview:{ENV} -->")
    assert f"`{SHAS[2][:7]}`" in body
    assert SHAS[0][:7] not in body
    assert "| support-bot | `3f2a9c01be` |" in body
    assert URL in body
    # One deployment per commit, each created once.
    assert [d["sha"] for d in github.state.deployments_of(REPO, ENV)] == SHAS


def test_a_restarted_controller_edits_the_same_comment(github: FakeGitHub) -> None:
    github.state.add_pull(REPO, PR, BRANCH)
    drive(github, lambda n: deliver(n, report("success", SHAS[0])))
    # Enough chatter after ours that finding it means reading a second page.
    for i in range(130):
        github.state.add_comment(REPO, PR, f"comment {i}")
    # Someone quoting our comment must not be taken for it.
    github.state.add_comment(REPO, PR, f"> <!-- shipyard:preview:{ENV} -->\n> quoted")

    drive(github, lambda n: deliver(n, report("success", SHAS[1])))

    ours = [
        c for c in github.state.pull_comments(REPO, PR) if c["user"]["login"] == "shipyard[bot]"
    ]
    assert len(ours) == 1
    assert f"`{SHAS[1][:7]}`" in ours[0]["body"]
    assert len(github.state.calls_to("POST", COMMENTS)) == 1
    [patch] = github.state.calls_to("PATCH", COMMENT)
    assert patch.path.endswith(f"/{ours[0]['id']}")


def test_a_comment_whose_response_was_lost_is_not_posted_twice(github: FakeGitHub) -> None:
    github.state.add_pull(REPO, PR, BRANCH)
    # GitHub creates the comment, then the answer is lost in a 502.
    github.state.fail_next(1, 502, match=f"POST {COMMENTS}", processed=True)

    drive(github, lambda n: deliver(n, report("success")))

    assert len(github.state.pull_comments(REPO, PR)) == 1
    assert len(github.state.calls_to("POST", COMMENTS)) == 1


def test_torn_down_marks_the_comment_and_makes_the_deployment_inactive(github: FakeGitHub) -> None:
    github.state.add_pull(REPO, PR, BRANCH)

    drive(github, lambda n: deliver(n, report("success", SHAS[0]), report("success", SHAS[1])))
    statuses_before = len(our_statuses(github, SHAS[1]))
    drive(github, lambda n: deliver(n, report("torn_down", SHAS[1])))

    [comment] = github.state.pull_comments(REPO, PR)
    assert "torn down" in comment["body"]
    assert len(github.state.calls_to("POST", COMMENTS)) == 1
    assert len(our_statuses(github, SHAS[1])) == statuses_before  # no commit status for a teardown
    first, second = github.state.deployments_of(REPO, ENV)
    # The superseded deployment went inactive when its successor succeeded (transient
    # environments are not auto-inactivated by GitHub), the last one on teardown.
    assert github.state.states_of(first["id"]) == ["success", "inactive"]
    assert github.state.states_of(second["id"]) == ["success", "inactive"]


def test_teardown_without_a_comment_posts_none(github: FakeGitHub) -> None:
    github.state.add_pull(REPO, PR, BRANCH)

    drive(github, lambda n: deliver(n, report("torn_down")))

    assert github.state.pull_comments(REPO, PR) == []
    assert github.state.calls_to("POST", COMMENTS) == []


def test_the_pull_request_is_found_through_the_pulls_api(github: FakeGitHub) -> None:
    github.state.add_pull(REPO, 41, "other-branch")
    github.state.add_pull(REPO, PR, BRANCH)

    drive(github, lambda n: deliver(n, report("success")), notify_pr=False)

    [lookup] = github.state.calls_to("GET", rf"/repos/{REPO}/pulls")
    assert lookup.query["head"] == f"acme:{BRANCH}"
    assert lookup.query["state"] == "open"
    assert len(github.state.pull_comments(REPO, PR)) == 1
    assert github.state.pull_comments(REPO, 41) == []


def test_a_branch_without_a_pull_request_gets_statuses_and_deployments_only(
    github: FakeGitHub,
) -> None:
    drive(github, lambda n: deliver(n, report("success")), notify_pr=False)

    assert [s["state"] for s in our_statuses(github)] == ["success"]
    assert len(github.state.deployments_of(REPO, ENV)) == 1
    assert not any("comments" in call.path for call in github.state.calls)


def test_calls_are_retried_when_github_answers_502(github: FakeGitHub) -> None:
    github.state.add_pull(REPO, PR, BRANCH)
    github.state.fail_next(2, 502)

    drive(github, lambda n: deliver(n, report("success")))

    assert len(github.state.calls_to("POST", STATUS)) == 3  # 502, 502, 201
    assert [s["state"] for s in our_statuses(github)] == ["success"]
    assert len(github.state.calls_to("POST", rf"/repos/{REPO}/deployments")) == 1
    assert len(github.state.calls_to("POST", COMMENTS)) == 1


def test_retries_stop_after_max_attempts(github: FakeGitHub) -> None:
    github.state.add_pull(REPO, PR, BRANCH)
    github.state.fail_next(5, 503)

    drive(github, lambda n: deliver(n, report("success")))

    # Five attempts at the status, then the report is abandoned: GitHub is down.
    assert len(github.state.calls) == 5
    assert our_statuses(github) == []


def test_a_429_waits_for_retry_after(github: FakeGitHub, caplog: pytest.LogCaptureFixture) -> None:
    github.state.rate_limit_next(retry_after=1)

    with caplog.at_level(logging.DEBUG, logger="shipyard.github"):
        drive(github, lambda n: deliver(n, report("pending")), notify_pr=False)

    forge_feedback.assert_the_wait_was_retry_after(caplog, github.state.calls_to("POST", STATUS))
    assert [s["state"] for s in our_statuses(github)] == ["pending"]


def test_a_refused_call_is_not_retried_and_the_rest_still_happens(github: FakeGitHub) -> None:
    github.state.add_pull(REPO, PR, BRANCH)
    github.state.fail_next(1, 403, match=rf"POST /repos/{REPO}/deployments")

    drive(github, lambda n: deliver(n, report("success")))

    assert len(github.state.calls_to("POST", rf"/repos/{REPO}/deployments")) == 1
    assert [s["state"] for s in our_statuses(github)] == ["success"]
    assert len(github.state.pull_comments(REPO, PR)) == 1


def test_github_down_never_blocks_or_raises(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="shipyard.github"):
        forge_feedback.submit_to_a_silent_forge(
            lambda url: GitHubNotifier(url, DEFAULT_TOKEN, backoff_base=0.01)
        )

    assert "not delivered" in caplog.text


def test_github_going_down_between_reports(github: FakeGitHub) -> None:
    github.state.add_pull(REPO, PR, BRANCH)

    async def scenario(notifier: GitHubNotifier) -> None:
        await deliver(notifier, report("pending"))
        github.stop()  # pooled keep-alive connections are cut too
        await deliver(notifier, report("success"))

    drive(github, scenario)

    assert [s["state"] for s in our_statuses(github)] == ["pending"]


def test_the_token_never_appears_in_logs(
    github: FakeGitHub, caplog: pytest.LogCaptureFixture
) -> None:
    github.state.add_pull(REPO, PR, BRANCH)
    wrong = "ghp_wrong-token-that-must-stay-secret"

    forge_feedback.deliver_with_a_good_and_a_wrong_token(
        lambda token: notifier_for(github, token),
        (DEFAULT_TOKEN, wrong),
        PR,
        lambda: github.state.fail_next(2, 502),
        caplog,
    )
    # A refused token ends the report at once: no retries, no further calls.
    assert len([c for c in github.state.calls if wrong in c.headers["authorization"]]) == 1


def test_without_a_token_the_notifier_does_nothing(
    github: FakeGitHub, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="shipyard.github"):
        forge_feedback.submit_without_a_token(lambda: notifier_for(github, token=None))

    assert github.state.calls == []
    assert caplog.text.count("no GitHub token") == 1


def test_a_pull_request_a_webhook_named_gets_the_comment_without_a_lookup(
    github: FakeGitHub,
) -> None:
    # Whether a fork's preview may have secrets is decided from the store (see
    # test_secrets_boundary); the notifier only remembers where the comment goes.
    github.state.add_pull(REPO, 12, BRANCH, head_repository="mallory/agents")

    async def scenario(notifier: GitHubNotifier) -> None:
        notifier.note_pull_request(REPO, BRANCH, 12, from_fork=True, labels=["enhancement"])
        await deliver(notifier, report("success"))

    drive(github, scenario, notify_pr=False)

    assert github.state.calls_to("GET", rf"/repos/{REPO}/pulls") == []
    [comment] = github.state.pull_comments(REPO, 12)
    assert str(comment["body"]).startswith(f"<!-- shipyard:preview:{ENV} -->")


def test_a_burst_of_reports_for_one_branch_coalesces_to_the_newest(github: FakeGitHub) -> None:
    github.state.add_pull(REPO, PR, BRANCH)
    cycle: list[ReportState] = ["pending", "failure", "success"]
    states = [*cycle, *cycle, *cycle, "failure"]
    burst = [
        report(state, SHAS[i % 3], problems=(f"problem {i}",) if state == "failure" else ())
        for i, state in enumerate(states)
    ]

    async def scenario(notifier: GitHubNotifier) -> None:
        await deliver(notifier, report("pending"))  # the comment exists before the burst
        for item in burst:
            notifier.submit(item)
            await asyncio.sleep(0)

    drive(github, scenario)

    last = burst[-1]
    final = our_statuses(github, last.sha)[-1]
    assert final["state"] == "failure"
    assert final["description"] == "problem 9"
    assert len(github.state.calls_to("PATCH", COMMENT)) < 10
    [comment] = github.state.pull_comments(REPO, PR)
    assert "problem 9" in comment["body"]


def test_manifest_text_cannot_break_the_comment_markdown(github: FakeGitHub) -> None:
    github.state.add_pull(REPO, PR, BRANCH)
    odd = (AgentReport("support-bot", None, None, "Failed | crash\nloop"),)
    problem = "agents/a.yaml:1:1: value ```</details>``` is not allowed"

    drive(github, lambda n: deliver(n, report("failure", agents=odd, problems=(problem,))))

    [comment] = github.state.pull_comments(REPO, PR)
    body = comment["body"]
    assert "| support-bot | — | — | Failed \\| crash loop |" in body
    # The problems sit in a fence longer than any backtick run they contain.
    assert f"````text\n{problem}\n````" in body


@pytest.mark.parametrize(
    ("remote", "expected"),
    [
        ("https://github.com/acme/agents.git", "acme/agents"),
        ("https://github.com/acme/agents", "acme/agents"),
        ("https://x-access-token:secret@github.com/acme/agents.git/", "acme/agents"),
        ("git@github.com:acme/agents.git", "acme/agents"),
        ("github.com:acme/agents", "acme/agents"),
        ("ssh://git@github.example.com/acme/agents", "acme/agents"),
        ("ssh://git@github.example.com:2222/acme/my.agents.git", "acme/my.agents"),
        ("/srv/git/acme/agents.git", None),
        ("file:///srv/git/acme/agents", None),
        ("https://gitlab.com/group/sub/agents.git", None),
        ("https://github.com/acme", None),
        ("https://github.com/acme/agents?x=1", None),
        ("C:/repos/agents", None),
        ("https://github.com/acme/..", None),
        ("", None),
    ],
)
def test_repository_from_remote(remote: str, expected: str | None) -> None:
    assert repository_from_remote(remote) == expected
