"""Pull request feedback on Gitea/Forgejo over real HTTP: a commit status and one comment.

Each test drives the real `GiteaNotifier` (the same queue, retry path and comment logic
GitHub and GitLab use) against `tests.fakes.gitea` on a loopback port, and judges only
what Gitea would have recorded.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator

import pytest

from preview.feedback import EvalComparison, PreviewReport, ReportState
from preview.gitea import GiteaNotifier
from tests.fakes.gitea import DEFAULT_TOKEN, FakeGitea, fake_gitea
from tests.integration import forge_feedback
from tests.integration.forge_feedback import BRANCH, MARKER, REPO, SHA, SHAS, URL, deliver

PR = 5
AGENTS = forge_feedback.AGENTS[:1]  # support-bot only
COMMENTS = rf"/api/v1/repos/{REPO}/issues/{PR}/comments"
COMMENT = rf"/api/v1/repos/{REPO}/issues/comments/\d+"
PULLS = rf"/api/v1/repos/{REPO}/pulls"


@pytest.fixture
def gitea() -> Iterator[FakeGitea]:
    with fake_gitea() as server:
        yield server


def report(
    state: ReportState, sha: str = SHA, *, evals: tuple[EvalComparison, ...] = ()
) -> PreviewReport:
    return forge_feedback.report(state, sha, agents=AGENTS, evals=evals)


def drive(gitea: FakeGitea, scenario: Callable[[GiteaNotifier], Awaitable[None]]) -> None:
    forge_feedback.drive(
        lambda: GiteaNotifier(gitea.url, DEFAULT_TOKEN, backoff_base=0.01), scenario, pull=None
    )


def statuses(gitea: FakeGitea, context: str, sha: str = SHA) -> list[dict[str, object]]:
    return [s for s in gitea.state.commit_statuses(REPO, sha) if s["context"] == context]


def our_comments(gitea: FakeGitea, number: int = PR) -> list[dict[str, object]]:
    return [c for c in gitea.state.pull_comments(REPO, number) if str(c["body"]).startswith(MARKER)]


def test_status_goes_pending_then_success_with_the_preview_url(gitea: FakeGitea) -> None:
    gitea.state.add_pull(REPO, PR, BRANCH)

    drive(gitea, lambda n: deliver(n, report("pending"), report("success")))

    ours = statuses(gitea, "shipyard/preview")
    assert [s["status"] for s in ours] == ["pending", "success"]
    assert ours[0]["target_url"] == ""
    assert ours[1]["target_url"] == URL
    assert ours[1]["description"] == "1 agent ready"
    for call in gitea.state.calls:
        assert call.headers["authorization"] == f"token {DEFAULT_TOKEN}"


def test_one_comment_across_three_pushes_edited_in_place(gitea: FakeGitea) -> None:
    gitea.state.add_pull(REPO, PR, BRANCH)
    gitea.state.add_comment(REPO, PR, f"> {MARKER}\n> a reviewer quoting us")

    drive(gitea, lambda n: deliver(n, *(report("success", sha) for sha in SHAS)))

    [comment] = our_comments(gitea)
    assert f"`{SHAS[2][:7]}`" in str(comment["body"])
    assert len(gitea.state.calls_to("POST", COMMENTS)) == 1
    assert len(gitea.state.calls_to("PATCH", COMMENT)) == 2
    assert len(gitea.state.pull_comments(REPO, PR)) == 2  # theirs and ours


def test_a_fresh_notifier_finds_the_comment_by_its_marker(gitea: FakeGitea) -> None:
    gitea.state.add_pull(REPO, PR, BRANCH)
    drive(gitea, lambda n: deliver(n, report("success", SHAS[0])))

    drive(gitea, lambda n: deliver(n, report("success", SHAS[1])))

    [comment] = our_comments(gitea)
    assert f"`{SHAS[1][:7]}`" in str(comment["body"])
    assert len(gitea.state.calls_to("POST", COMMENTS)) == 1


def test_only_the_repositorys_own_pull_request_is_commented(gitea: FakeGitea) -> None:
    # Gitea cannot filter pulls by head branch: a fork's same-named branch, other
    # branches and pages of pull requests are all sorted out on our side.
    for number in range(100, 160):
        gitea.state.add_pull(REPO, number, f"other-{number}")
    gitea.state.add_pull(REPO, PR, BRANCH)
    gitea.state.add_pull(REPO, 42, BRANCH, head_repository="mallory/agents")

    drive(gitea, lambda n: deliver(n, report("success")))

    assert len(our_comments(gitea, PR)) == 1
    assert our_comments(gitea, 42) == []
    lookups = gitea.state.calls_to("GET", PULLS)
    assert [call.query["page"] for call in lookups] == ["1", "2"]
    assert {call.query["state"] for call in lookups} == {"open"}


def test_the_eval_status_counts_cases(gitea: FakeGitea) -> None:
    gitea.state.add_pull(REPO, PR, BRANCH)
    broken = EvalComparison(
        "support-bot", "golden", "refund", False, 12.0, "missing 'refund'", True, 10.0
    )
    fine = EvalComparison("support-bot", "golden", "greeting", True, 8.0, "", True, 9.0)

    drive(gitea, lambda n: deliver(n, report("success", evals=(fine, broken))))

    [evals] = statuses(gitea, "shipyard/evals")
    assert evals["status"] == "failure"
    assert "support-bot/refund" in str(evals["description"])
    [comment] = our_comments(gitea)
    assert "missing 'refund'" in str(comment["body"])


def test_a_comment_whose_response_was_lost_is_not_posted_twice(gitea: FakeGitea) -> None:
    gitea.state.add_pull(REPO, PR, BRANCH)
    gitea.state.faults.fail_next(1, 502, match=f"POST {COMMENTS}", processed=True)

    drive(gitea, lambda n: deliver(n, report("success")))

    assert len(our_comments(gitea)) == 1
    assert len(gitea.state.calls_to("POST", COMMENTS)) == 1


def test_torn_down_edits_the_comment_of_a_merged_pull_and_posts_no_status(
    gitea: FakeGitea,
) -> None:
    gitea.state.add_pull(REPO, PR, BRANCH)
    drive(gitea, lambda n: deliver(n, report("success")))
    gitea.state.pulls[(REPO, PR)]["state"] = "closed"

    drive(gitea, lambda n: deliver(n, report("torn_down")))

    [comment] = our_comments(gitea)
    assert "torn down" in str(comment["body"])
    assert len(statuses(gitea, "shipyard/preview")) == 1
    assert gitea.state.calls_to("GET", PULLS)[-1].query["state"] == "all"
