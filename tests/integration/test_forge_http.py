"""The one retry path every forge call takes, over real HTTP against a fake forge on loopback.

Each test drives `ForgeHTTP` (through the Gitea adapter, the thinnest) against
`tests.fakes.gitea` with a fault queued, and judges what the forge recorded and what the
caller was told: retried or not, how many times, and that it ended.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import httpx
import pytest

from preview.feedback import AgentReport, PreviewReport
from preview.forge_http import (
    ForgeAmbiguous,
    ForgeError,
    ForgeHTTP,
    ForgeRejected,
    ForgeUnauthorized,
    ForgeUnavailable,
    RetryPolicy,
)
from preview.gitea import GiteaForge
from tests.fakes.gitea import DEFAULT_TOKEN, FakeGitea, fake_gitea

REPO = "acme/agents"
BRANCH = "feature/x"
SHA = "ab" * 20
STATUS = rf"/api/v1/repos/{REPO}/statuses/{SHA}"
COMMENTS = rf"/api/v1/repos/{REPO}/issues/3/comments"
# Quick backoff, generous attempts: what ends a call in these tests is the behaviour
# under test, never the attempt count running out by chance.
FAST = RetryPolicy(max_attempts=5, backoff_base=0.01, request_timeout=10.0, budget=60.0)
# Waits far longer than a test could stand: a test that has to sit one out fails by timeout.
PATIENCE = 60.0

T = TypeVar("T")


@pytest.fixture
def gitea() -> Iterator[FakeGitea]:
    with fake_gitea() as server:
        server.state.add_pull(REPO, 3, BRANCH)
        yield server


def report() -> PreviewReport:
    agents = (AgentReport("bot", "v1", "http://bot.example/", "Healthy"),)
    return PreviewReport(REPO, BRANCH, SHA, "preview-feature-x", "success", agents)


def call(url: str, work: Callable[[GiteaForge], Awaitable[T]], policy: RetryPolicy = FAST) -> T:
    """Run `work` against a fresh adapter; a call that does not end fails the test."""

    async def main() -> T:
        http = ForgeHTTP(url, GiteaForge.auth_headers(DEFAULT_TOKEN), policy, GiteaForge.log)
        async with httpx.AsyncClient() as client:
            http.bind(client)
            return await asyncio.wait_for(work(GiteaForge(http)), PATIENCE)

    return asyncio.run(main())


def set_status(forge: GiteaForge) -> Awaitable[None]:
    return forge.set_status(report(), "success", "1 agent ready", target_url=None)


def test_a_502_is_retried_and_the_next_answer_wins(gitea: FakeGitea) -> None:
    gitea.state.faults.fail_next(1, 502)

    call(gitea.url, set_status)

    assert len(gitea.state.calls_to("POST", STATUS)) == 2
    [status] = gitea.state.commit_statuses(REPO, SHA)
    assert status["status"] == "success"


def test_retries_end_after_max_attempts_with_the_last_reason(gitea: FakeGitea) -> None:
    gitea.state.faults.fail_next(10, 503)

    with pytest.raises(ForgeUnavailable, match=r"503 after 5 attempts"):
        call(gitea.url, set_status)

    assert len(gitea.state.calls_to("POST", STATUS)) == 5
    assert gitea.state.commit_statuses(REPO, SHA) == []


def test_a_429_waits_what_retry_after_says(
    gitea: FakeGitea, caplog: pytest.LogCaptureFixture
) -> None:
    gitea.state.faults.rate_limit_next(retry_after=1)

    with caplog.at_level(logging.DEBUG, logger="shipyard.gitea"):
        call(gitea.url, set_status)

    first, second = gitea.state.calls_to("POST", STATUS)
    assert second.json == first.json
    # The wait chosen is the forge's, not the millisecond backoff of the policy.
    assert f"POST {STATUS} failed (429 rate limited); retry 1 in 1.00s" in caplog.text
    assert len(gitea.state.commit_statuses(REPO, SHA)) == 1


def test_a_retry_after_beyond_the_budget_gives_up_at_once(gitea: FakeGitea) -> None:
    gitea.state.faults.rate_limit_next(retry_after=30)
    policy = RetryPolicy(max_attempts=5, backoff_base=0.01, budget=5.0)

    with pytest.raises(ForgeUnavailable, match="429 rate limited after 1 attempts"):
        call(gitea.url, set_status, policy)

    assert len(gitea.state.calls_to("POST", STATUS)) == 1


def test_a_hanging_forge_is_bounded_by_the_time_budget(gitea: FakeGitea) -> None:
    gitea.state.faults.hang_next(1000)
    # Attempts enough for minutes of hanging: only the budget can end this call.
    policy = RetryPolicy(max_attempts=1000, backoff_base=0.01, request_timeout=0.3, budget=1.5)

    with pytest.raises(ForgeUnavailable, match="ReadTimeout"):
        call(gitea.url, set_status, policy)

    assert len(gitea.state.calls_to("POST", STATUS)) >= 1
    assert gitea.state.commit_statuses(REPO, SHA) == []


def test_a_create_that_hangs_is_not_sent_twice(gitea: FakeGitea) -> None:
    gitea.state.faults.hang_next(1, match=f"POST {COMMENTS}")
    policy = RetryPolicy(max_attempts=5, backoff_base=0.01, request_timeout=0.3)

    with pytest.raises(ForgeAmbiguous, match="ReadTimeout"):
        call(gitea.url, lambda forge: forge.create_comment(REPO, 3, "hello"), policy)

    assert len(gitea.state.calls_to("POST", COMMENTS)) == 1


def test_a_create_answered_502_is_ambiguous_not_repeated(gitea: FakeGitea) -> None:
    gitea.state.faults.fail_next(1, 502, match=f"POST {COMMENTS}", processed=True)

    with pytest.raises(ForgeAmbiguous, match="502"):
        call(gitea.url, lambda forge: forge.create_comment(REPO, 3, "hello"))

    assert len(gitea.state.calls_to("POST", COMMENTS)) == 1
    assert len(gitea.state.pull_comments(REPO, 3)) == 1  # it did land: hence "ambiguous"


def test_a_rate_limited_create_is_retried(gitea: FakeGitea) -> None:
    # A 429 is refused before it is acted on: repeating a create is safe then.
    gitea.state.faults.rate_limit_next(retry_after=0, match=f"POST {COMMENTS}")

    created = call(gitea.url, lambda forge: forge.create_comment(REPO, 3, "hello"))

    assert len(gitea.state.calls_to("POST", COMMENTS)) == 2
    [comment] = gitea.state.pull_comments(REPO, 3)
    assert comment["id"] == created


def test_a_4xx_is_not_retried(gitea: FakeGitea) -> None:
    gitea.state.faults.fail_next(1, 403, match=f"POST {STATUS}")

    with pytest.raises(ForgeRejected) as refused:
        call(gitea.url, set_status)

    assert refused.value.status == 403
    assert len(gitea.state.calls_to("POST", STATUS)) == 1


def test_a_missing_object_is_a_4xx_with_the_forges_reason(gitea: FakeGitea) -> None:
    with pytest.raises(ForgeRejected, match="issue does not exist") as refused:
        call(gitea.url, lambda forge: forge.create_comment(REPO, 99, "hello"))

    assert refused.value.status == 404
    assert len(gitea.state.calls_to("POST", r".*/issues/99/comments")) == 1


def test_a_refused_token_ends_at_once_and_is_never_logged(
    gitea: FakeGitea, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "gitea-wrong-token-that-must-stay-secret"

    async def main() -> None:
        http = ForgeHTTP(gitea.url, GiteaForge.auth_headers(wrong), FAST, GiteaForge.log)
        async with httpx.AsyncClient() as client:
            http.bind(client)
            with pytest.raises(ForgeUnauthorized) as refused:
                await set_status(GiteaForge(http))
            logging.getLogger("shipyard.gitea").warning("refused: %s (%r)", refused.value, http)

    with caplog.at_level(logging.DEBUG):
        asyncio.run(main())

    assert "401" in caplog.text
    assert wrong not in caplog.text
    assert len(gitea.state.calls) == 1


def test_an_unreachable_forge_is_retried_then_unavailable() -> None:
    server = FakeGitea().start()
    url = server.url
    server.stop()

    with pytest.raises(ForgeUnavailable, match="ConnectError after 5 attempts"):
        call(url, lambda forge: forge.create_comment(REPO, 3, "hello"))


def test_a_next_page_link_to_another_origin_is_refused() -> None:
    async def main() -> None:
        policy = RetryPolicy()
        http = ForgeHTTP(
            "http://127.0.0.1:9/api/v1", {"Authorization": "token t"}, policy, GiteaForge.log
        )
        async with httpx.AsyncClient() as client:
            http.bind(client)
            await http.request("GET", "http://127.0.0.2:9/api/v1/repos/a/b/pulls")

    with pytest.raises(ForgeError, match="another origin"):
        asyncio.run(main())
