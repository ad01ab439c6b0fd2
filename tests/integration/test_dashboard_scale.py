"""No dashboard page waits on more than one round trip per 1,000 agents to render.

Each page's cost in store statements and Kubernetes API calls (`dashboard_costs`) is
the same at 10 agents as at 100, and small: pages read the controller's memory and ask
the store a fixed number of questions, none per agent or per environment. The agent
page's only cluster calls are its pod logs (the list of the agent's pods and one read
per pod). `python bench/dashboard_pages.py` prints the same at 1,000 agents; the
browser's side (one HTTP response per page, no script fetching data to draw it) is
checked in Chromium in `test_dashboard.py`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fake_apiserver.server import FakeApiServer
from tests.integration.dashboard_costs import page_costs

MOST_STATEMENTS = 8
MOST_API_CALLS = 2  # the agent page's pod logs: list its pods, read the one pod's log


@pytest.fixture
def fake() -> Iterator[FakeApiServer]:
    server = FakeApiServer(ready_delay=0.0).start()
    try:
        yield server
    finally:
        server.stop()


def test_a_page_costs_the_same_few_round_trips_at_10_and_at_100_agents(
    tmp_path: Path, fake: FakeApiServer
) -> None:
    small = page_costs(10, tmp_path / "small", fake)
    large = page_costs(100, tmp_path / "large", fake)
    counted = {path: (cost.statements, cost.api_calls) for path, cost in large.items()}
    assert counted == {path: (cost.statements, cost.api_calls) for path, cost in small.items()}
    for path, (statements, api_calls) in counted.items():
        assert statements <= MOST_STATEMENTS, (path, statements)
        assert api_calls <= MOST_API_CALLS, (path, api_calls)
