"""What the GitHub, GitLab and Gitea feedback tests share, whichever forge they talk to.

One preview (its repository, branch, environment, commits and agents), the report about
it, and the ways a test drives a real notifier: through a scenario on its own event loop,
against a forge that never answers, with a wrong token, or with none.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from preview.delivery import ForgeNotifier
from preview.feedback import AgentReport, EvalComparison, PreviewReport, ReportState
from tests.fakes.json_http import Call

REPO = "acme/agents"
BRANCH = "feature/faster-answers"
ENV = "preview-feature-faster-answers"
SHAS = [f"{i:x}" * 40 for i in range(1, 4)]
SHA = SHAS[0]
URL = f"http://support-bot--{ENV}.preview.example.com/"
AGENTS = (
    AgentReport("support-bot", "3f2a9c01be", URL, "Healthy"),
    AgentReport("triage", "77d01e4a2c", f"http://triage--{ENV}.preview.example.com/", "Healthy"),
)
MARKER = f"<!-- shipyard:preview:{ENV} -->"

N = TypeVar("N", bound=ForgeNotifier)


def report(
    state: ReportState,
    sha: str = SHA,
    *,
    agents: tuple[AgentReport, ...] = AGENTS,
    problems: tuple[str, ...] = (),
    evals: tuple[EvalComparison, ...] = (),
    branch: str = BRANCH,
    environment: str = ENV,
) -> PreviewReport:
    return PreviewReport(REPO, branch, sha, environment, state, agents, problems, evals=evals)


def drive(
    new_notifier: Callable[[], N],
    scenario: Callable[[N], Awaitable[None]],
    *,
    pull: int | None,
) -> None:
    """`scenario` with a fresh notifier (told of request `pull` first, if given), then
    everything it queued delivered and the notifier closed."""

    async def main() -> None:
        notifier = new_notifier()
        if pull is not None:
            notifier.note_pull_request(REPO, BRANCH, pull, from_fork=False, labels=())
        try:
            await scenario(notifier)
            await notifier.flush()
        finally:
            await notifier.close()

    asyncio.run(main())


async def deliver(notifier: ForgeNotifier, *reports: PreviewReport) -> None:
    """Submit and wait for each report in turn, so none is coalesced away."""
    for item in reports:
        notifier.submit(item)
        await notifier.flush()


def submit_to_a_silent_forge(new_notifier: Callable[[str], ForgeNotifier]) -> None:
    """A report per commit submitted to a forge (at the URL given) that accepts
    connections and never answers: a submit that called it itself would have connected
    (and hung) before returning. Then the forge goes down and every delivery fails."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    silent.setblocking(False)
    url = f"http://127.0.0.1:{silent.getsockname()[1]}"

    async def main() -> None:
        notifier = new_notifier(url)
        for sha in SHAS:
            notifier.submit(report("success", sha))
        with pytest.raises(BlockingIOError):
            silent.accept()  # nothing connected while the reports were submitted
        silent.close()  # and now the forge is down: every delivery fails
        await notifier.flush()
        await notifier.close()

    asyncio.run(main())


def deliver_with_a_good_and_a_wrong_token(
    new_notifier: Callable[[str], ForgeNotifier],
    tokens: tuple[str, str],
    pull: int,
    fail_twice: Callable[[], None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Two reports with the good token (the first of them meeting two failures, armed
    by `fail_twice`), one with the wrong token: the refusal is logged, neither token is,
    and the good notifier never shows its token."""
    good_token, wrong_token = tokens

    async def main() -> None:
        good = new_notifier(good_token)
        bad = new_notifier(wrong_token)
        good.note_pull_request(REPO, BRANCH, pull, from_fork=False, labels=())
        fail_twice()
        await deliver(good, report("failure", problems=("boom",)), report("success"))
        await deliver(bad, report("success"))
        assert good_token not in repr(good)
        await good.close()
        await bad.close()

    with caplog.at_level(logging.DEBUG):
        asyncio.run(main())

    assert "401" in caplog.text  # the refused token was reported...
    for token in tokens:
        assert token not in caplog.text  # ...without the token itself


def assert_the_wait_was_retry_after(caplog: pytest.LogCaptureFixture, calls: list[Call]) -> None:
    """`calls` are a rate-limited call and the same call again, sent after the forge's
    Retry-After of 1 s (logged), not after the millisecond backoff the notifier has."""
    first, second = calls
    assert second.json == first.json
    waits = [r.getMessage() for r in caplog.records if "rate limited" in r.getMessage()]
    assert len(waits) == 1
    assert waits[0].endswith("retry 1 in 1.00s"), waits


def submit_without_a_token(new_notifier: Callable[[], ForgeNotifier]) -> None:
    """Two reports to a notifier that has no token, flushed and closed."""

    async def main() -> None:
        notifier = new_notifier()
        notifier.submit(report("pending"))
        notifier.submit(report("success"))
        await notifier.flush()
        await notifier.close()

    asyncio.run(main())
