"""Merge request feedback over real HTTP against the fake GitLab: a commit status, one note.

Each test drives the real `GitLabNotifier` (its own httpx client, its own retries)
against `tests.fakes.gitlab` on a loopback port, and judges only what GitLab would have
recorded.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Iterator

import pytest

from preview.feedback import MAX_DESCRIPTION, Notifier
from preview.github import GitHubNotifier
from preview.gitlab import GitLabNotifier
from tests.fakes.gitlab import DEFAULT_TOKEN, FakeGitLab, fake_gitlab
from tests.integration import forge_feedback
from tests.integration.forge_feedback import BRANCH, MARKER, REPO, SHA, SHAS, URL, deliver, report

PROJECT = "acme%2Fagents"
MR = 7
STATUS = rf"/api/v4/projects/{PROJECT}/statuses/[0-9a-f]+"
NOTES = rf"/api/v4/projects/{PROJECT}/merge_requests/{MR}/notes"
NOTE = rf"{NOTES}/\d+"


@pytest.fixture
def gitlab() -> Iterator[FakeGitLab]:
    with fake_gitlab() as server:
        server.state.add_project(REPO)
        yield server


def drive(
    gitlab: FakeGitLab,
    scenario: Callable[[GitLabNotifier], Awaitable[None]],
    *,
    notify_mr: bool = True,
) -> None:
    forge_feedback.drive(
        lambda: GitLabNotifier(gitlab.url, DEFAULT_TOKEN, backoff_base=0.01),
        scenario,
        pull=MR if notify_mr else None,
    )


def our_statuses(gitlab: FakeGitLab, sha: str = SHA) -> list[dict[str, object]]:
    return [s for s in gitlab.state.commit_statuses(REPO, sha) if s["name"] == "shipyard/preview"]


def our_notes(gitlab: FakeGitLab, iid: int = MR) -> list[dict[str, object]]:
    return [n for n in gitlab.state.mr_notes(REPO, iid) if str(n["body"]).startswith(MARKER)]


def test_status_goes_running_then_success_with_the_preview_url(gitlab: FakeGitLab) -> None:
    gitlab.state.add_merge_request(REPO, MR, BRANCH)

    drive(gitlab, lambda n: deliver(n, report("pending"), report("success")))

    statuses = our_statuses(gitlab)
    assert [s["status"] for s in statuses] == ["running", "success"]
    assert statuses[0]["target_url"] is None
    assert statuses[1]["target_url"] == URL
    assert statuses[1]["description"] == "2 agents ready"
    assert statuses[1]["ref"] == BRANCH
    for call in gitlab.state.calls:
        assert call.path.startswith(f"/api/v4/projects/{PROJECT}/")
        assert call.headers["private-token"] == DEFAULT_TOKEN
        assert "authorization" not in call.headers


def test_failure_status_describes_the_problem(gitlab: FakeGitLab) -> None:
    gitlab.state.add_merge_request(REPO, MR, BRANCH)
    problems = (
        "agents/support.yaml:4:3: spec.modle: unknown field, did you mean 'model'? " + "x" * 150,
        "agents/triage.yaml:9:5: spec.prompt.file: prompts/missing.md does not exist",
    )

    drive(gitlab, lambda n: deliver(n, report("failure", problems=problems)))

    [status] = our_statuses(gitlab)
    assert status["status"] == "failed"
    description = str(status["description"])
    assert len(description) <= MAX_DESCRIPTION
    assert description.startswith("agents/support.yaml:4:3: spec.modle: unknown field")
    assert description.endswith("(+1 more)")
    [note] = our_notes(gitlab)
    assert "prompts/missing.md does not exist" in str(note["body"])


def test_exactly_one_note_across_three_pushes_edited_in_place(gitlab: FakeGitLab) -> None:
    gitlab.state.add_merge_request(REPO, MR, BRANCH)
    gitlab.state.add_note(REPO, MR, "Looks good, but see the preview.")
    gitlab.state.add_note(REPO, MR, "added 1 commit", user="dev", system=True)

    drive(gitlab, lambda n: deliver(n, *(report("success", sha) for sha in SHAS)))

    [note] = our_notes(gitlab)
    assert len(gitlab.state.mr_notes(REPO, MR)) == 3
    [post] = gitlab.state.calls_to("POST", NOTES)
    assert str(post.json["body"]).startswith(MARKER)
    puts = gitlab.state.calls_to("PUT", NOTE)
    assert len(puts) == 2
    assert all(put.path.endswith(f"/{note['id']}") for put in puts)
    body = str(note["body"])
    assert f"`{SHAS[2][:7]}`" in body
    assert SHAS[0][:7] not in body
    assert URL in body
    for sha in SHAS:
        assert [s["status"] for s in our_statuses(gitlab, sha)] == ["success"]


def test_a_fresh_notifier_finds_the_note_by_its_marker(gitlab: FakeGitLab) -> None:
    gitlab.state.add_merge_request(REPO, MR, BRANCH)
    drive(gitlab, lambda n: deliver(n, report("success", SHAS[0])))
    # Enough chatter after ours that the newest-first default order would bury it.
    for i in range(130):
        gitlab.state.add_note(REPO, MR, f"note {i}")
    gitlab.state.add_note(REPO, MR, f"> {MARKER}\n> quoted")

    drive(gitlab, lambda n: deliver(n, report("success", SHAS[1])))

    [note] = our_notes(gitlab)
    assert f"`{SHAS[1][:7]}`" in str(note["body"])
    assert len(gitlab.state.calls_to("POST", NOTES)) == 1
    [put] = gitlab.state.calls_to("PUT", NOTE)
    assert put.path.endswith(f"/{note['id']}")
    lookup = gitlab.state.calls_to("GET", NOTES)[-1]
    assert lookup.query["per_page"] == "100"


def test_torn_down_edits_the_note_and_posts_no_status(gitlab: FakeGitLab) -> None:
    # The MR was merged before the preview went away: found through `state=all`.
    gitlab.state.add_merge_request(REPO, MR, BRANCH)
    drive(gitlab, lambda n: deliver(n, report("success")), notify_mr=False)
    gitlab.state.merge_requests[(gitlab.state.add_project(REPO), MR)]["state"] = "merged"

    drive(gitlab, lambda n: deliver(n, report("torn_down")), notify_mr=False)

    [note] = our_notes(gitlab)
    assert "torn down" in str(note["body"])
    assert len(gitlab.state.calls_to("POST", NOTES)) == 1
    assert len(our_statuses(gitlab)) == 1  # no commit status for a teardown
    lookup = gitlab.state.calls_to("GET", rf"/api/v4/projects/{PROJECT}/merge_requests")[-1]
    assert lookup.query["state"] == "all"


def test_the_merge_request_is_found_through_the_api(gitlab: FakeGitLab) -> None:
    gitlab.state.add_merge_request(REPO, 41, "other-branch")
    # A fork's MR from a branch of the same name is somebody else's.
    gitlab.state.add_merge_request(REPO, 42, BRANCH, source_project="mallory/agents")
    gitlab.state.add_merge_request(REPO, MR, BRANCH)

    drive(gitlab, lambda n: deliver(n, report("success")), notify_mr=False)

    [lookup] = gitlab.state.calls_to("GET", rf"/api/v4/projects/{PROJECT}/merge_requests")
    assert lookup.query["source_branch"] == BRANCH
    assert lookup.query["state"] == "opened"
    assert len(our_notes(gitlab, MR)) == 1
    assert our_notes(gitlab, 41) == our_notes(gitlab, 42) == []


def test_calls_are_retried_after_two_502s(gitlab: FakeGitLab) -> None:
    gitlab.state.add_merge_request(REPO, MR, BRANCH)
    gitlab.state.fail_next(2, 502)

    drive(gitlab, lambda n: deliver(n, report("success")))

    assert len(gitlab.state.calls_to("POST", STATUS)) == 3  # 502, 502, 201
    assert [s["status"] for s in our_statuses(gitlab)] == ["success"]
    assert len(our_notes(gitlab)) == 1


def test_a_note_whose_response_was_lost_is_not_posted_twice(gitlab: FakeGitLab) -> None:
    gitlab.state.add_merge_request(REPO, MR, BRANCH)
    gitlab.state.fail_next(1, 502, match=f"POST {NOTES}", processed=True)

    drive(gitlab, lambda n: deliver(n, report("success")))

    assert len(our_notes(gitlab)) == 1
    assert len(gitlab.state.calls_to("POST", NOTES)) == 1


def test_a_429_waits_for_retry_after(gitlab: FakeGitLab, caplog: pytest.LogCaptureFixture) -> None:
    gitlab.state.rate_limit_next(retry_after=1)

    with caplog.at_level(logging.DEBUG, logger="shipyard.gitlab"):
        drive(gitlab, lambda n: deliver(n, report("pending")), notify_mr=False)

    forge_feedback.assert_the_wait_was_retry_after(caplog, gitlab.state.calls_to("POST", STATUS))
    assert [s["status"] for s in our_statuses(gitlab)] == ["running"]


def test_the_same_status_again_is_not_an_error(
    gitlab: FakeGitLab, caplog: pytest.LogCaptureFixture
) -> None:
    gitlab.state.add_merge_request(REPO, MR, BRANCH)

    with caplog.at_level(logging.WARNING, logger="shipyard.gitlab"):
        drive(gitlab, lambda n: deliver(n, report("success"), report("success")))

    assert len(gitlab.state.calls_to("POST", STATUS)) == 2  # the second one a 400
    assert len(our_statuses(gitlab)) == 1
    assert len(gitlab.state.calls_to("PUT", NOTE)) == 1
    assert caplog.text == ""


def test_gitlab_down_never_blocks_or_raises(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="shipyard.gitlab"):
        forge_feedback.submit_to_a_silent_forge(
            lambda url: GitLabNotifier(url, DEFAULT_TOKEN, backoff_base=0.01)
        )

    assert "not delivered" in caplog.text


def test_the_token_never_appears_in_logs(
    gitlab: FakeGitLab, caplog: pytest.LogCaptureFixture
) -> None:
    gitlab.state.add_merge_request(REPO, MR, BRANCH)
    wrong = "glpat-wrong-token-that-must-stay-secret"

    forge_feedback.deliver_with_a_good_and_a_wrong_token(
        lambda token: GitLabNotifier(gitlab.url, token, backoff_base=0.01),
        (DEFAULT_TOKEN, wrong),
        MR,
        lambda: gitlab.state.fail_next(2, 502),
        caplog,
    )
    # A refused token ends the report at once: no retries, no further calls.
    assert len([c for c in gitlab.state.calls if c.headers.get("private-token") == wrong]) == 1


def test_without_a_token_the_notifier_does_nothing(
    gitlab: FakeGitLab, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="shipyard.gitlab"):
        forge_feedback.submit_without_a_token(lambda: GitLabNotifier(gitlab.url, None))

    assert gitlab.state.calls == []
    assert caplog.text.count("no GitLab token") == 1


def test_a_merge_request_a_webhook_named_gets_the_note_without_a_lookup(
    gitlab: FakeGitLab,
) -> None:
    # Whether a fork's preview may have secrets is decided from the store (see
    # test_secrets_boundary); the notifier only remembers where the note goes.
    gitlab.state.add_merge_request(REPO, 12, BRANCH, source_project="mallory/agents")

    async def scenario(notifier: GitLabNotifier) -> None:
        notifier.note_pull_request(REPO, BRANCH, 12, from_fork=True, labels=["enhancement"])
        await deliver(notifier, report("success"))

    drive(gitlab, scenario, notify_mr=False)

    assert gitlab.state.calls_to("GET", rf"/api/v4/projects/{PROJECT}/merge_requests") == []
    assert len(our_notes(gitlab, 12)) == 1


def test_the_public_api_matches_the_github_notifier() -> None:
    notifier: Notifier = GitLabNotifier(token=None)  # mypy checks the protocol
    assert "https://gitlab.com/api/v4" in repr(notifier)
    ours, theirs = inspect.signature(GitLabNotifier), inspect.signature(GitHubNotifier)
    assert ours == theirs
    for name in ("submit", "flush", "close", "note_pull_request"):
        ours = inspect.signature(getattr(GitLabNotifier, name))
        assert ours == inspect.signature(getattr(GitHubNotifier, name)), name
