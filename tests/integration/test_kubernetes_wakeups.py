"""Rollout waits are woken by the watch: no wait sits out a poll interval for news.

The target is given a poll interval far longer than the test's own patience; a rollout
can then only finish in time if the watch's events wake its wait.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.targets.kubernetes.client import KubeClient
from controller.targets.kubernetes.target import KubernetesTarget
from tests.fake_apiserver.server import FakeApiServer
from tests.integration.gateway_cluster import request

HOURS = 3600.0  # the poll interval: no rollout here may wait for it
PATIENCE = 60.0


@pytest.fixture
def fake() -> Iterator[FakeApiServer]:
    server = FakeApiServer(ready_delay=0.2).start()
    try:
        yield server
    finally:
        server.stop()
        assert not server.crashes, server.crashes


def test_rollouts_finish_when_the_watch_says_so_not_at_the_next_poll(
    fake: FakeApiServer, tmp_path: Path
) -> None:
    async def main() -> list[bool]:
        client = KubeClient.from_config(str(fake.kubeconfig(tmp_path / "kubeconfig")))
        target = KubernetesTarget(client, poll_interval=HOURS)
        try:
            results = await asyncio.wait_for(
                asyncio.gather(*(target.deploy(request(f"agent-{i}", "v1"), 30) for i in range(5))),
                PATIENCE,
            )
            again = await asyncio.wait_for(target.deploy(request("agent-0", "v2"), 30), PATIENCE)
            return [result.healthy for result in (*results, again)]
        finally:
            await target.close()

    assert asyncio.run(main()) == [True] * 6
